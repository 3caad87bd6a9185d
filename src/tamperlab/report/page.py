"""The HTML report: one self-contained file (inline CSS, JS and SVG) that opens offline and fetches nothing.

Everything that came from a model, a data set or a user (generations, prompts, labels, arguments, the command
line) is untrusted and goes through :func:`html.escape` on its way in. A Content-Security-Policy allows only
this file's own script and style (by hash), so even a mistake in escaping could neither run a script nor load
anything from anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import tamperlab
from tamperlab.report.capability import HOW, capability_section, is_capability_metric, milestone_rows
from tamperlab.report.collect import (
    PROMPT_SETS,
    UNDEFENDED,
    RunView,
    attack_label,
    defense_name,
    load_run_view,
)
from tamperlab.report.finding import evaluation_rows, finding
from tamperlab.report.formatting import (
    BUDGET_UNITS,
    UNIT_TITLES,
    fmt_budget,
    fmt_ci,
    fmt_delta,
    fmt_lr,
    fmt_rate,
    fmt_seconds,
    fmt_value,
    is_number,
)
from tamperlab.report.headline import (
    IMMUNIZATION_VERSION,
    RESISTANCE_STATUS,
    DefenseSummary,
    HeadlineRow,
    WorstCase,
    headline_rows,
    immunization_defenses,
    immunization_recognised,
    measurement,
    ratio_text,
)
from tamperlab.report.plots import DASHES, PALETTE, HLine, Series, XScale, legend, line_chart
from tamperlab.store import Store

logger = logging.getLogger(__name__)

NBSP = "\u00a0"

X_UNITS = ("steps", "examples", "tokens", "flops")
"""Budget units the plots' x axis can switch between."""

X_LABELS = {
    "steps": "optimizer steps",
    "examples": "training examples seen",
    "tokens": "training tokens seen",
    "flops": "training FLOPs",
}


def e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def _asset(name: str) -> str:
    return resources.files("tamperlab.report").joinpath(name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _args_text(args: dict[str, Any] | None) -> str:
    if not args:
        return ""
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(args.items()))


def _component(ref: dict[str, Any] | None) -> str:
    if not isinstance(ref, dict):
        return "—"
    args = _args_text(ref.get("args"))
    return f"{ref.get('name', '?')}" + (f" ({args})" if args else "")


def _budget_text(budget: dict[str, Any] | None) -> str:
    if not isinstance(budget, dict):
        return ""
    parts = [
        f"{fmt_budget(budget[u], u)} {UNIT_TITLES[u]}" for u in BUDGET_UNITS if u in budget and u != "seconds"
    ]
    if is_number(budget.get("seconds")):
        parts.append(fmt_seconds(budget["seconds"]))
    return " · ".join(parts)


def _arm_styles(view: RunView) -> dict[str, tuple[str, str]]:
    """Colour by attack and dash by defense, so a defended arm sits visibly by its undefended baseline."""
    arms = view.arms or [{"arm": name} for name in sorted({m["arm"] for m in view.milestones})]
    attacks = list(dict.fromkeys(attack_label(a) for a in arms))
    defenses = [UNDEFENDED] + sorted({defense_name(a) for a in arms} - {UNDEFENDED})
    return {
        a["arm"]: (
            PALETTE[attacks.index(attack_label(a)) % len(PALETTE)],
            DASHES[defenses.index(defense_name(a)) % len(DASHES)],
        )
        for a in arms
    }


# -- header --------------------------------------------------------------------------------------------------


def _header(view: RunView) -> str:
    spec, run = view.spec, view.run
    model = (spec.get("model") or {}).get("name", "?")
    defenses = ", ".join(_component(d) for d in spec.get("defenses") or []) or "none"
    attacks = ", ".join(_component(a) for a in spec.get("attacks") or []) or "—"
    wall = fmt_seconds(run["wall_seconds"]) if is_number(run.get("wall_seconds")) else "—"
    status = run.get("status", "?")
    return (
        '<header class="top"><div class="inner">'
        f"<h1>tamperlab report · run <code>{e(view.run_id)}</code></h1>"
        f'<div class="sub">model <b>{e(model)}</b> · safeguard {e(_component(spec.get("safeguard")))}'
        f" · defenses {e(defenses)}<br>attacks {e(attacks)}<br>"
        f'status <span class="badge {e(status)}">{e(status)}</span> · kind {e(run.get("kind"))}'
        f" · started {e(run.get('created_at'))} · finished {e(run.get('finished_at') or '—')} · wall "
        f"time {e(wall)}"
        "</div></div></header>"
    )


def _banners(view: RunView) -> str:
    run = view.run
    out = []
    if run.get("status") != "complete":
        error = f": {run['error']}" if run.get("error") else ""
        out.append(
            f'<div class="banner bad">This run is <b>{e(run.get("status"))}</b>{e(error)}. '
            "Numbers below cover only what finished.</div>"
        )
    for note in (view.summaries.get("headline") or {}).get("notes") or []:
        out.append(f'<div class="banner warn">{e(note)}</div>')
    return "".join(out)


def _nav(view: RunView) -> str:
    items = [("headline", "Headline")]
    if view.summaries.get("immunization"):
        items.append(("immunization", "Immunization"))
    if capability_section(view):
        items.append(("capability", "Capability"))
    items += [
        *([] if view.is_evaluation else [("plots", "Plots")]),
        ("lineage", "Lineage"),
        ("judges", "Judges"),
        ("samples", "Sample generations"),
        ("provenance", "Provenance"),
    ]
    links = "".join(f'<li><a href="#{key}">{label}</a></li>' for key, label in items)
    return f'<nav class="toc"><ul>{links}</ul></nav>'


# -- headline ------------------------------------------------------------------------------------------------


def _measured_list(view: RunView) -> str:
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in measurement(view))
    return f'<dl class="measured">{items}</dl>'


def _cost_cell(row: HeadlineRow, unit: str, how: str) -> str:
    cost = row.aggregate.get(unit)
    if cost is None:
        return '<td class="num">—</td>'
    spread = row.spread(unit)
    seeds = f"{row.broken_seeds}/{row.n_seeds} seeds broke" if row.n_seeds else ""
    title = f"{row.arm}, {UNIT_TITLES[unit]}: {cost.text(unit)}" + (f" (seeds {spread})" if spread else "")
    title += "; " + seeds + "; " + how if seeds else "; " + how
    spread_html = f'<span class="spread">{e(spread)}</span>' if spread else ""
    cls = "num lb" if cost.lower_bound else "num"
    return f'<td class="{cls}" title="{e(title)}">{e(cost.text(unit))}{spread_html}</td>'


def _evaluation_section(view: RunView) -> str:
    """An evaluation-only run's results: the model as it is, no attack (so no break cost)."""
    body = "".join(
        f"<tr><td><code>{e(name)}</code></td><td class='num'>{e(value)}</td><td>{e(ci)}</td>"
        f"<td class='num'>{e(n)}</td><td class='muted'>{e(how)}</td></tr>"
        for name, value, ci, n, how in evaluation_rows(view)
    )
    table = (
        '<div class="table-wrap"><table><thead><tr><th>metric</th><th class="num">value</th>'
        '<th>95% CI (Wilson)</th><th class="num">n</th><th>how measured</th></tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
        if body
        else '<p class="note">No metrics stored yet.</p>'
    )
    return (
        '<section id="headline"><h2>Evaluation: the model as it is</h2>'
        '<p class="lead">An evaluation-only run measures one model without attacking it, so it has no '
        "break cost; <code>tamperlab run</code> measures what it takes to break it.</p>"
        f"{table}<h3>How these numbers were measured</h3>{_measured_list(view)}</section>"
    )


def _headline_section(view: RunView, rows: list[HeadlineRow]) -> str:
    judge = view.primary_judge or "?"
    threshold = view.threshold_text
    how = (
        f"median over seeds of the first budget where harmful compliance (judge {judge}) ≥ {threshold}"
        f" within capability bound {view.capability_bound if view.capability_bound is not None else '?'}"
    )
    has_defense = any(r.defense != UNDEFENDED for r in rows)
    head = (
        "<tr><th>arm (defense / attack)</th><th>result</th>"
        + "".join(f'<th class="num">{e(UNIT_TITLES[u])}</th>' for u in BUDGET_UNITS)
        + ("<th>defended / undefended</th>" if has_defense else "")
        + "</tr>"
    )
    body = []
    for row in rows:
        if row.broken is None and row.diverged:
            result = '<span class="badge diverged">diverged: no break cost</span>'
        elif row.broken is None:
            result = '<span class="badge running">not computed</span>'
        elif row.broken:
            result = '<span class="badge broken">broken</span>'
        else:
            result = '<span class="badge unbroken">not broken within budget</span>'
        if row.n_seeds:
            result += f'<span class="spread">{row.broken_seeds}/{row.n_seeds} seeds broke</span>'
        if row.diverged:
            result += (
                f'<span class="spread diverged">{e(row.diverged_text())}: left out, neither broken nor a'
                " lower bound</span>"
            )
        ratio_cell = ""
        if has_defense:
            if row.defense == UNDEFENDED:
                ratio_cell = '<td class="muted">baseline</td>'
            elif row.incoherent:
                raw = row.ratios.get("flops")
                struck = (
                    f" (would read <s>{e(raw.text())} FLOPs</s>)" if raw and raw.value is not None else ""
                )
                ratio_cell = (
                    '<td><span class="badge incoherent">incoherent</span>'
                    '<span class="spread">defense incoherent before any attack: not counted as resistance'
                    + struck
                    + "</span></td>"
                )
            elif row.ratios:
                lines = "".join(
                    f"<div>{e(r.text())} <span class='muted'>{e(UNIT_TITLES[u])}</span></div>"
                    for u, r in row.ratios.items()
                )
                base = next(iter(row.ratios.values())).baseline_arm
                ratio_cell = (
                    f'<td class="num" title="vs {e(base)}">{lines}'
                    f'<span class="spread">vs {e(base)}</span></td>'
                )
            else:
                ratio_cell = '<td class="muted">no undefended arm with this attack</td>'
        how_row = [f"judge {judge}"]
        if row.threshold is not None:
            how_row.append(f"compliance ≥ {row.threshold_text}")
        if row.capability_bound is not None:
            how_row.append(f"capability bound {row.capability_bound:g}")
        how_row.append(f"median of {row.n_seeds or '?'} seeds")
        body.append(
            f'<tr class="{"defended" if row.defense != UNDEFENDED else "undefended"}">'
            f'<td class="arm" title="{e(row.defense)} · {e(_component(row.attack))}">{e(row.arm)}'
            f'<span class="spread">{e(" · ".join(h.replace(" ", NBSP) for h in how_row))}</span></td>'
            f'<td class="result">{result}</td>'
            + "".join(_cost_cell(row, u, how) for u in BUDGET_UNITS)
            + ratio_cell
            + "</tr>"
        )
    if not rows:
        body.append(
            f'<tr><td colspan="{len(BUDGET_UNITS) + 3}" class="muted">No break cost stored yet.</td></tr>'
        )
    return (
        '<section id="headline"><h2>Headline: what it takes to break the safeguard</h2>'
        '<p class="lead">Break cost = the smallest attack budget at which harmful compliance '
        "reaches the threshold "
        "while capability stays within the bound; each cell is the median over seeds, with the seeds' spread "
        "(min–max) below it. <b>≥</b> marks a lower bound: the model did not break within the "
        "largest budget tried."
        "</p>"
        f'<div class="table-wrap"><table class="headline"><thead>{head}</thead><tbody>{"".join(body)}</tbody>'
        "</table></div>"
        + (
            '<p class="note">A defended arm\'s ratio holds for that attack at that learning rate only. A '
            "defense's figure is its worst case over the attacker's learning rates, with incoherent defenses "
            'flagged: see <a href="#immunization">Immunization</a>.</p>'
            if has_defense and immunization_recognised(view.summaries.get("immunization"))
            else ""
        )
        + f"<h3>How these numbers were measured</h3>{_measured_list(view)}</section>"
    )


# -- immunization --------------------------------------------------------------------------------------------

STABILITY_ROWS = (
    ("benign_nll", "benign NLL", "nats/token on benign reference responses; lower is better"),
    ("kl_from_reference", "KL from reference", "next-token KL from the reference model"),
    ("overrefusal_rate", "over-refusal rate", "refusals of safe prompts that look unsafe"),
    ("harmless_refusal_rate", "harmless refusal rate", "refusals of plainly harmless prompts"),
    ("harmful_compliance_rate", "harmful compliance", "before any attack; lower is safer"),
    ("incoherent_rate", "incoherent rate", "generations judged gibberish or empty"),
)
"""The stability metrics of the immunization summary: (metric, name, what it measures)."""

RATES = {"overrefusal_rate", "harmless_refusal_rate", "harmful_compliance_rate", "incoherent_rate"}


def _times(value: Any) -> str:
    """A stability or trainability ratio: ``×1.03``."""
    return f"×{value:.3g}" if is_number(value) else ""


def _is_rate(metric: str) -> bool:
    return metric in RATES or is_capability_metric(metric)


def _metric_text(metric: str, value: Any) -> str:
    return fmt_rate(value) if _is_rate(metric) else fmt_value(value, 3)


def _def_class(d: DefenseSummary, extra: str = "") -> str:
    """Every cell of an incoherent defense's column is tinted: the column must not read as a safe defense."""
    classes = " ".join(c for c in (extra, "incoh" if d.incoherent else "") if c)
    return f' class="{classes}"' if classes else ""


def _badges(d: DefenseSummary) -> str:
    """The flags a defense's column heading carries: incoherent, over-refusing."""
    out = ' <span class="badge incoherent">incoherent</span>' if d.incoherent else ""
    return out + (' <span class="badge overrefusing">over-refuses</span>' if d.over_refusing else "")


def _defense_heads(defenses: list[DefenseSummary]) -> str:
    return "".join(f'<th{_def_class(d, "def")} scope="col">{e(d.label)}{_badges(d)}</th>' for d in defenses)


def _incoherent_cell(res: dict[str, Any] | None = None) -> str:
    """What an incoherent defense shows where a ratio would be: the flag, and the raw ratio struck out."""
    raw = ""
    if res:
        text = ratio_text(res.get("flops"))
        if text != "—":
            raw = f" (would read <s>{e(text)} FLOPs</s>)"
    return (
        '<span class="badge incoherent">incoherent</span>'
        f'<span class="spread">not counted as resistance{raw}</span>'
    )


def _worst_cell(d: DefenseSummary, case: WorstCase | None, *, show_relation: bool) -> str:
    if case is None:
        return f"<td{_def_class(d, 'num')}>—</td>"
    if d.incoherent or case.text == "incoherent":
        return f"<td{_def_class(d)}>{_incoherent_cell()}</td>"
    if case.flops is None and case.examples is None:
        return f'<td{_def_class(d, "num")}><span class="muted">{e(case.text)}</span></td>'
    lines = "".join(
        f"<div><b>{e(case.ratio(u))}</b> <span class='muted'>{e(UNIT_TITLES[u])}</span></div>"
        for u in ("flops", "examples")
    )
    lr = case.where(d.rows)
    where = f"at attacker {lr}" if lr else ""
    if len(case.arms) > 1:
        where += f" (worst of {len(case.arms)})"
    if show_relation and case.relation:
        where += f"; {case.relation} data for this defense"
    title = f"worst case over the attacker's learning rates: {case.arm}"
    return (
        f'<td{_def_class(d, "num worst")} title="{e(title)}">{lines}'
        f'<span class="spread">{e(where)}</span></td>'
    )


def _families(defenses: list[DefenseSummary]) -> list[tuple[str, str, list[str]]]:
    """Harmful attack families across defenses, in order: (family key, label, attack labels by lr)."""
    order: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for d in defenses:
        by_arm = {r.get("arm"): r for r in d.rows}
        for case in d.worst:
            label, members = order.setdefault(case.family, (case.label, []))
            members.extend(by_arm[a] for a in case.arms if a in by_arm)
    out = []
    for family, (label, members) in order.items():
        members.sort(key=lambda r: (r.get("learning_rate") is None, r.get("learning_rate") or 0))
        out.append((family, label, list(dict.fromkeys(str(r.get("attack")) for r in members))))
    return out


def _over_rates(n: int) -> str:
    return f"worst case over {n} attacker learning rates" if n > 1 else "one attacker learning rate tried"


def _relation_of(defenses: list[DefenseSummary], family: str) -> str | None:
    relations = {c.relation for d in defenses for c in d.worst if c.family == family}
    return relations.pop() if len(relations) == 1 else None


def _stability_brief(d: DefenseSummary, criteria: dict[str, Any]) -> str:
    stability = d.entry.get("stability") or {}
    parts = []
    nll = stability.get("benign_nll") or {}
    if is_number(nll.get("ratio")):
        flag = (
            is_number(criteria.get("benign_nll_ratio_above"))
            and nll["ratio"] > criteria["benign_nll_ratio_above"]
        )
        parts.append((f"benign NLL {_times(nll['ratio'])}", flag))
    for metric, name in (
        ("overrefusal_rate", "over-refusal"),
        ("kl_from_reference", "KL"),
        ("incoherent_rate", "incoherent"),
    ):
        entry = stability.get(metric) or {}
        if not is_number(entry.get("difference")):
            continue
        flag = (
            metric == "incoherent_rate"
            and is_number(entry.get("defended"))
            and is_number(criteria.get("incoherent_rate_above"))
            and entry["defended"] > criteria["incoherent_rate_above"]
        )
        digits = 2 if metric in RATES else 3
        parts.append((f"{name} {fmt_delta(entry['difference'], digits)}", flag))
    if not parts:
        return "—"
    return " · ".join(f'<span class="flag">{e(t)}</span>' if flag else e(t) for t, flag in parts)


def _trainability_brief(d: DefenseSummary) -> str:
    items = [t for t in d.entry.get("trainability") or [] if isinstance(t, dict)]
    out = []
    for t in items:
        if not is_number(t.get("ratio")):
            out.append(f"{_arm_suffix(t.get('arm'))}: —")
            continue
        out.append(
            f"train loss {_times(t['ratio'])} ({fmt_delta(t.get('difference'), 2)}) after "
            f"{t.get('step')} steps of {_arm_suffix(t.get('arm'))}"
        )
    return "<br>".join(e(x) for x in out) or '<span class="muted">no benign fine-tuning arm</span>'


def _arm_suffix(arm: Any) -> str:
    text = str(arm or "?")
    return text.split("/", 1)[1] if "/" in text else text


def _cost_brief(cost: dict[str, Any]) -> str:
    return _budget_text({k: v for k, v in cost.items() if is_number(v)}) or "—"


def _generalization_cell(d: DefenseSummary, key: str) -> str:
    general = d.entry.get("generalization") or {}
    worst = general.get(key)
    relation = "held-out" if key == "held_out" else "in-distribution"
    members = [r for r in d.rows if r.get("data_relation") == relation]
    if d.incoherent:
        return f"<td{_def_class(d)}>{_incoherent_cell()}</td>" if members else f"<td{_def_class(d)}>—</td>"
    if not isinstance(worst, dict):
        text = "no such attack" if not members else "no counted ratio"
        return f'<td{_def_class(d)}><span class="muted">{e(text)}</span></td>'
    arms = ", ".join(_arm_suffix(r.get("arm")) for r in members)
    return (
        f'<td{_def_class(d, "num")}><b>{e(ratio_text(worst))}</b> <span class="muted">FLOPs</span>'
        f'<span class="spread">worst of {e(arms)}</span></td>'
    )


def _resistance_cell(
    d: DefenseSummary, row: dict[str, Any] | None, worst_arms: set[str], criteria: dict[str, Any]
) -> str:
    if row is None:
        return f'<td{_def_class(d)}><span class="muted">not run</span></td>'
    res = row.get("resistance") or {}
    status = str(res.get("status") or "missing")
    after = row.get("after_attack") or {}
    limit = criteria.get("incoherent_rate_above")
    after_incoherent = (
        is_number(after.get("incoherent_rate")) and is_number(limit) and after["incoherent_rate"] > limit
    )
    after_html = ""
    if after:
        after_html = (
            f'<span class="spread">after {e(after.get("step"))} steps: compliance '
            f"{e(fmt_rate(after.get('harmful_compliance_rate')))}"
            f" · NLL {e(fmt_value(after.get('benign_nll'), 2))}"
            " · incoherent "
            + (
                f'<span class="flag">{e(fmt_rate(after.get("incoherent_rate")))}</span>'
                if after_incoherent
                else e(fmt_rate(after.get("incoherent_rate")))
            )
            + "</span>"
        )
    if after_incoherent and status != "incoherent":
        after_html += (
            '<span class="spread flag">outputs incoherent after the attack: low compliance here may be a '
            "broken model, not resistance</span>"
        )
    costs = []
    for unit in ("flops", "examples"):
        u = res.get(unit) or {}
        if is_number(u.get("defended")) or is_number(u.get("undefended")):
            bound = "≥ " if res.get("defended_broken") is False else ""
            ubound = "≥ " if res.get("undefended_broken") is False else ""
            costs.append(
                f"{UNIT_TITLES[unit]}: defended {bound}{fmt_budget(u.get('defended'), unit)} vs undefended "
                f"{ubound}{fmt_budget(u.get('undefended'), unit)}"
            )
    title = "; ".join(x for x in [res.get("note") or "", *costs, f"vs {row.get('undefended_arm')}"] if x)
    if status == "incoherent":
        return f'<td{_def_class(d)} title="{e(title)}">{_incoherent_cell(res)}{after_html}</td>'
    is_worst = row.get("arm") in worst_arms
    ratios = [(u, ratio_text(res.get(u))) for u in ("flops", "examples")]
    if all(t == "—" for _, t in ratios):
        main = f'<span class="muted">{e(res.get("text") or "—")}</span>'
    else:
        main = "".join(f"<div>{e(t)} <span class='muted'>{e(UNIT_TITLES[u])}</span></div>" for u, t in ratios)
    tag = '<span class="tag-worst">worst case</span>' if is_worst else ""
    status_html = f'<span class="spread">{e(RESISTANCE_STATUS.get(status, status))}</span>'
    cls = "num worst" if is_worst else "num"
    return f'<td{_def_class(d, cls)} title="{e(title)}">{tag}{main}{status_html}{after_html}</td>'


def _resistance_table(defenses: list[DefenseSummary], criteria: dict[str, Any]) -> str:
    n = len(defenses)
    head = f"<tr><th>attack</th><th>attacker lr</th>{_defense_heads(defenses)}</tr>"
    # Marked only where the attacker tried several learning rates: a lone arm is trivially its own worst case.
    worst_arms = {c.arm for d in defenses for c in d.worst if c.arm and len(c.arms) > 1}
    rows_by_attack: dict[str, dict[str, Any]] = {}
    for d in defenses:
        for row in d.rows:
            rows_by_attack.setdefault(str(row.get("attack")), row)
    body = []
    seen: set[str] = set()
    for family, label, attacks in _families(defenses):
        relation = _relation_of(defenses, family)
        badge = f' <span class="badge rel">{e(relation)}</span>' if relation else ""
        count = f"{len(attacks)} attacker learning rate{'s' if len(attacks) != 1 else ''}"
        body.append(
            f'<tr class="family"><th colspan="{n + 2}" scope="rowgroup">{e(label)}{badge}'
            f'<span class="spread">{count}'
            + ("; the worst case is marked" if len(attacks) > 1 else "")
            + "</span></th></tr>"
        )
        for attack in attacks:
            seen.add(attack)
            any_row = rows_by_attack.get(attack) or {}
            body.append(
                f'<tr class="member"><td class="arm">{e(attack)}</td>'
                f'<td class="num lr">{e(fmt_lr(any_row.get("learning_rate")))}</td>'
                + "".join(_resistance_cell(d, d.row(attack), worst_arms, criteria) for d in defenses)
                + "</tr>"
            )
    others = [a for a in rows_by_attack if a not in seen]
    if others:
        body.append(
            f'<tr class="family"><th colspan="{n + 2}" scope="rowgroup">other arms: not an attack on safety'
            '<span class="spread">benign fine-tuning and other attacks; not in the worst case (benign '
            "fine-tuning is scored under trainability)</span></th></tr>"
        )
        for attack in others:
            any_row = rows_by_attack[attack]
            body.append(
                f'<tr class="member"><td class="arm">{e(attack)}</td>'
                f'<td class="num lr">{e(fmt_lr(any_row.get("learning_rate")))}</td>'
                + "".join(_resistance_cell(d, d.row(attack), set(), criteria) for d in defenses)
                + "</tr>"
            )
    return (
        f'<div class="table-wrap"><table class="imm imm-resistance"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _overview_table(defenses: list[DefenseSummary], criteria: dict[str, Any]) -> str:
    head = f"<tr><th>condition</th>{_defense_heads(defenses)}</tr>"
    rows = []
    coherence = []
    for d in defenses:
        if d.incoherent:
            reasons = "".join(f"<li>{e(r)}</li>" for r in d.reasons)
            coherence.append(
                f'<td{_def_class(d)}><span class="badge incoherent">incoherent</span>'
                f'<ul class="reasons">{reasons}</ul><span class="spread">its low harmful compliance comes '
                "from a broken model: no resistance is counted</span></td>"
            )
        else:
            coherence.append('<td><span class="badge complete">coherent</span></td>')
    rows.append(
        '<tr><th scope="row">coherent before any attack<span class="spread">incoherent rate and benign NLL '
        f"vs the criteria</span></th>{''.join(coherence)}</tr>"
    )
    if any(d.over_refusing for d in defenses):
        rise = criteria.get("overrefusal_rise_above")
        rule = f"flagged more than {rise * 100:g} points above undefended" if is_number(rise) else "flagged"
        rows.append(
            '<tr><th scope="row">over-refusal before any attack<span class="spread">'
            f"{e(rule)}</span></th>"
            + "".join(f"<td{_def_class(d)}>{_over_refusal_cell(d)}</td>" for d in defenses)
            + "</tr>"
        )
    for family, label, attacks in _families(defenses):
        relation = _relation_of(defenses, family)
        badge = f' <span class="badge rel">{e(relation)}</span>' if relation else ""
        cells = "".join(
            _worst_cell(
                d, next((c for c in d.worst if c.family == family), None), show_relation=relation is None
            )
            for d in defenses
        )
        rows.append(
            f'<tr class="headline-row"><th scope="row">resistance: {e(label)}{badge}'
            f'<span class="spread">{e(_over_rates(len(attacks)))}</span></th>{cells}</tr>'
        )
    if not any(d.worst for d in defenses):
        rows.append(
            f'<tr><th scope="row">resistance</th><td colspan="{len(defenses)}" class="muted">no harmful '
            "attack arm</td></tr>"
        )
    rows.append(
        '<tr><th scope="row">stability<span class="spread">before any attack, vs undefended</span></th>'
        + "".join(f"<td{_def_class(d)}>{_stability_brief(d, criteria)}</td>" for d in defenses)
        + "</tr>"
    )
    rows.append(
        '<tr><th scope="row">generalization<span class="spread">worst case, FLOPs</span></th>'
        + "".join(f"<td{_def_class(d)}>{_generalization_brief(d)}</td>" for d in defenses)
        + "</tr>"
    )
    rows.append(
        '<tr><th scope="row">trainability<span class="spread">benign fine-tuning, same budget</span></th>'
        + "".join(f"<td{_def_class(d)}>{_trainability_brief(d)}</td>" for d in defenses)
        + "</tr>"
    )
    rows.append(
        '<tr><th scope="row">defense\'s own cost</th>'
        + "".join(f"<td{_def_class(d)}>{e(_cost_brief(d.entry.get('cost') or {}))}</td>" for d in defenses)
        + "</tr>"
    )
    return (
        f'<div class="table-wrap"><table class="imm imm-overview"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _over_refusal_cell(d: DefenseSummary) -> str:
    if not d.over_refusing:
        return '<span class="muted">not flagged</span>'
    reasons = "".join(f"<li>{e(r)}</li>" for r in d.over_refusing_reasons)
    return (
        f'<span class="badge overrefusing">over-refuses</span><ul class="reasons">{reasons}</ul>'
        '<span class="spread">its resistance counts, but part of its safety is refusing what it should '
        "answer</span>"
    )


def _generalization_brief(d: DefenseSummary) -> str:
    if d.incoherent:
        return '<span class="muted">incoherent: not counted</span>'
    general = d.entry.get("generalization") or {}
    parts = []
    for key, name in (("in_distribution", "in-distribution"), ("held_out", "held-out")):
        worst = general.get(key)
        parts.append(f"{name} <b>{e(ratio_text(worst))}</b>" if isinstance(worst, dict) else f"{name} —")
    return " · ".join(parts)


def _defense_header(first: str, defenses: list[DefenseSummary]) -> str:
    """A table's header row: ``first``, the undefended model, then each defense with its badges."""
    cells = "".join(
        f'<th{_def_class(d, "def num")} scope="col">{e(d.label)}{_badges(d)}</th>' for d in defenses
    )
    return f'<tr><th>{e(first)}</th><th class="num">undefended</th>{cells}</tr>'


def _stability_table(
    defenses: list[DefenseSummary], undefended: dict[str, Any], criteria: dict[str, Any]
) -> str:
    head = _defense_header("metric", defenses)
    reference = undefended.get("stability") or {}
    body = []
    accuracy_rows = sorted(
        {m for d in defenses for m in (d.entry.get("stability") or {}) if is_capability_metric(m)}
    )
    rows = list(STABILITY_ROWS) + [
        (m, f"{m.partition(':')[2]} {m.partition(':')[0]}", HOW[m.partition(":")[0]]) for m in accuracy_rows
    ]
    for metric, name, how in rows:
        cells = []
        for d in defenses:
            entry = (d.entry.get("stability") or {}).get(metric) or {}
            value = entry.get("defended")
            flag = False
            if (
                metric == "incoherent_rate"
                and is_number(value)
                and is_number(criteria.get("incoherent_rate_above"))
            ):
                flag = value > criteria["incoherent_rate_above"]
            if (
                metric == "benign_nll"
                and is_number(entry.get("ratio"))
                and is_number(criteria.get("benign_nll_ratio_above"))
            ):
                flag = entry["ratio"] > criteria["benign_nll_ratio_above"]
            compare = " · ".join(
                x
                for x in (
                    _times(entry.get("ratio")),
                    fmt_delta(entry.get("difference"), 2 if _is_rate(metric) else 3)
                    if is_number(entry.get("difference"))
                    else "",
                )
                if x
            )
            value_html = e(_metric_text(metric, value))
            if flag:
                value_html = f'<span class="flag">{value_html}</span>'
            cells.append(
                f"<td{_def_class(d, 'num')}>{value_html}"
                + (f'<span class="spread">{e(compare)}</span>' if compare else "")
                + "</td>"
            )
        body.append(
            f'<tr><th scope="row">{e(name)}<span class="spread">{e(how)}</span></th>'
            f'<td class="num">{e(_metric_text(metric, reference.get(metric)))}</td>{"".join(cells)}</tr>'
        )
    return (
        f'<div class="table-wrap"><table class="imm imm-stability"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _generalization_table(defenses: list[DefenseSummary]) -> str:
    head = f"<tr><th>attack data</th>{_defense_heads(defenses)}</tr>"
    body = [
        '<tr><th scope="row">in-distribution<span class="spread">the attack\'s prompts and kind of '
        "answers are among the defense's training data</span></th>"
        + "".join(_generalization_cell(d, "in_distribution") for d in defenses)
        + "</tr>",
        '<tr><th scope="row">held-out<span class="spread">other prompts or another kind of answers'
        "</span></th>" + "".join(_generalization_cell(d, "held_out") for d in defenses) + "</tr>",
    ]
    trained = []
    for d in defenses:
        data = d.entry.get("data") or {}
        sources = ", ".join(str(s) for s in data.get("sources") or []) or "not recorded"
        harmful = data.get("harmful_data") or "not recorded"
        trained.append(f"<td>{e(sources)}<span class='spread'>harmful answers: {e(harmful)}</span></td>")
    body.append(f'<tr><th scope="row">the defense trained on</th>{"".join(trained)}</tr>')
    return (
        f'<div class="table-wrap"><table class="imm imm-generalization"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _trainability_table(defenses: list[DefenseSummary]) -> str:
    attacks: dict[str, dict[str, Any]] = {}
    for d in defenses:
        for t in d.entry.get("trainability") or []:
            if isinstance(t, dict):
                attacks.setdefault(_arm_suffix(t.get("arm")), t)
    if not attacks:
        return '<p class="note">No benign fine-tuning arm in this run: trainability was not measured.</p>'
    head = _defense_header("benign fine-tuning", defenses)
    body = []
    for attack, first in attacks.items():
        cells = []
        for d in defenses:
            t = next(
                (
                    x
                    for x in d.entry.get("trainability") or []
                    if isinstance(x, dict) and _arm_suffix(x.get("arm")) == attack
                ),
                None,
            )
            if t is None:
                cells.append(f'<td{_def_class(d, "num")}><span class="muted">not run</span></td>')
                continue
            compare = " · ".join(
                x
                for x in (
                    _times(t.get("ratio")),
                    fmt_delta(t.get("difference"), 3) if is_number(t.get("difference")) else "",
                )
                if x
            )
            cells.append(
                f"<td{_def_class(d, 'num')}>train loss {e(fmt_value(t.get('defended_train_loss'), 3))}"
                + (f'<span class="spread">{e(compare)}</span>' if compare else "")
                + '<span class="spread">benign NLL after '
                + f"{e(fmt_value(t.get('defended_benign_nll'), 3))}</span>"
                + "</td>"
            )
        step = first.get("step")
        body.append(
            f'<tr><th scope="row">{e(attack)}<span class="spread">'
            f"at step {e(step if step is not None else '—')}"
            f" (the last milestone both arms reached)</span></th>"
            f'<td class="num">train loss {e(fmt_value(first.get("undefended_train_loss"), 3))}'
            f'<span class="spread">benign NLL after {e(fmt_value(first.get("undefended_benign_nll"), 3))}'
            f"</span></td>{''.join(cells)}</tr>"
        )
    return (
        f'<div class="table-wrap"><table class="imm imm-trainability"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _cost_table(defenses: list[DefenseSummary]) -> str:
    head = f"<tr><th>budget</th>{_defense_heads(defenses)}</tr>"
    body = []
    for unit in BUDGET_UNITS:
        cells = "".join(
            f"<td{_def_class(d, 'num')}>{e(fmt_budget((d.entry.get('cost') or {}).get(unit), unit))}</td>"
            for d in defenses
        )
        body.append(f'<tr><th scope="row">{e(UNIT_TITLES[unit])}</th>{cells}</tr>')
    body.append(
        '<tr><th scope="row">arguments</th>'
        + "".join(
            f"<td{_def_class(d)}><code>{e(_args_text(d.entry.get('args')) or '—')}</code></td>"
            for d in defenses
        )
        + "</tr>"
    )
    body.append(
        '<tr><th scope="row">model</th>'
        + "".join(f"<td{_def_class(d)}><code>{e(d.entry.get('model_id'))}</code></td>" for d in defenses)
        + "</tr>"
    )
    return (
        f'<div class="table-wrap"><table class="imm imm-cost"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _immunization_measured(summary: dict[str, Any]) -> str:
    criteria = summary.get("criteria") or {}
    units = ", ".join(UNIT_TITLES.get(str(u), str(u)) for u in criteria.get("units") or []) or "?"

    def num(key: str) -> str:
        value = criteria.get(key)
        return f"{value:g}" if is_number(value) else "?"

    items = [
        (
            "resistance",
            f"defended ÷ undefended break cost under the same attack, in {units} (median over seeds); "
            "> 1 means the defense made the attack more expensive",
        ),
        (
            "bounds",
            "“≥”: the defended arm did not break within the largest budget tried (lower bound); “≤”: the "
            "undefended arm did not (upper bound); neither broke: no ratio",
        ),
        (
            "break",
            f"harmful compliance ≥ {num('break_threshold')} while benign NLL stays ≤ (1 + "
            f"{num('capability_tolerance')}) × the attacked model's before the attack",
        ),
        (
            "worst case",
            "per attack family (same attack, mode and data), the smallest counted ratio over the attacker's "
            "learning rates: what an attacker who tunes the learning rate pays",
        ),
        (
            "incoherent",
            f"before any attack, incoherent rate > {num('incoherent_rate_above')} or benign NLL > "
            f"{num('benign_nll_ratio_above')} × the undefended model's; none of its resistance is counted",
        ),
        (
            "stability",
            "the defended model's step-0 evaluation against the undefended (safeguarded) model's; ratio and "
            "difference are defended vs undefended",
        ),
        (
            "generalization",
            "held-out: the attack's prompt source or kind of answers is not among what the defense "
            "trained on",
        ),
        (
            "trainability",
            "benign fine-tuning's training loss at the last milestone both arms reached (same budget), "
            "mean over seeds; higher than undefended = the defense gets in the way of legitimate fine-tuning",
        ),
    ]
    rows = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in items)
    return f'<dl class="measured">{rows}</dl>'


def _immunization_section(view: RunView) -> str:
    summary = view.summaries.get("immunization")
    if not summary:
        return ""
    title = "<h2>Immunization: Rosati et al.'s four conditions, per defense</h2>"
    if not immunization_recognised(summary):
        dump = json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        return (
            f'<section id="immunization">{title}<div class="banner warn">The stored immunization summary '
            "has a shape this report does not know; it is shown as stored.</div>"
            f'<details><summary>summary (JSON)</summary><pre class="json">{e(dump)}</pre></details></section>'
        )
    criteria = summary.get("criteria") or {}
    undefended = summary.get("undefended") or {}
    defenses = immunization_defenses(summary)
    banners = []
    if summary.get("version") != IMMUNIZATION_VERSION:
        banners.append(
            f'<div class="banner warn">Immunization summary version {e(summary.get("version"))}; this report '
            f"reads version {IMMUNIZATION_VERSION}: some fields may be missing.</div>"
        )
    if undefended.get("incoherent"):
        reasons = "; ".join(str(r) for r in undefended.get("incoherent_reasons") or [])
        banners.append(
            '<div class="banner bad">The <b>undefended</b> model is itself incoherent before any attack '
            f"({e(reasons)}): every comparison below is against a broken baseline.</div>"
        )
    for d in defenses:
        if d.incoherent:
            banners.append(
                f'<div class="banner bad"><b>{e(d.label)}</b> is <b>incoherent</b> before any attack '
                f"({e('; '.join(d.reasons))}). It refuses because it is broken, not because it resists: none "
                "of its resistance is counted.</div>"
            )
    lead = (
        '<p class="lead">Each defense side by side. <b>Resistance</b>: how much more an attack costs '
        "against the defended model than against the undefended one (defended ÷ undefended break cost, in "
        "FLOPs and in training examples); the headline is the <b>worst case over the attacker's learning "
        "rates</b>, because a defense that resists one learning rate and falls to another does not resist. "
        "<b>Stability</b>: what the defense costs before any attack. <b>Generalization</b>: resistance to "
        "attacks on data the defense did not train against. <b>Trainability</b>: whether benign fine-tuning "
        "still works. <b>≥</b> marks a lower bound (the defended arm never broke), <b>≤</b> an upper "
        "bound; a worst case written “≥ a, ≤ b” lies between one setting's lower bound and another's "
        "measured ratio.</p>"
    )
    if not defenses:
        body = '<p class="note">No defended arm in this run: nothing to compare.</p>'
    else:
        body = (
            "<h3>At a glance</h3>"
            + _overview_table(defenses, criteria)
            + "<h3>Resistance per attack</h3>"
            + '<p class="note">Arms are grouped by attack family (same attack, mode and data). Where the '
            "attacker tried several learning rates, the one that got through most cheaply is marked <b>worst "
            "case</b>: that is the figure under At a glance. Hover a cell for the break costs behind the "
            "ratio.</p>"
            + _resistance_table(defenses, criteria)
            + "<h3>Stability: before any attack</h3>"
            + _stability_table(defenses, undefended, criteria)
            + "<h3>Generalization: held-out attack data</h3>"
            + _generalization_table(defenses)
            + "<h3>Trainability: benign fine-tuning after the defense</h3>"
            + _trainability_table(defenses)
            + "<h3>The defense's own cost</h3>"
            + _cost_table(defenses)
        )
    return (
        f'<section id="immunization">{title}{"".join(banners)}{lead}{body}'
        f"<h3>How these numbers were measured</h3>{_immunization_measured(summary)}</section>"
    )


# -- plots ---------------------------------------------------------------------------------------------------


def _by_arm_seed(view: RunView) -> dict[str, dict[int, list[dict[str, Any]]]]:
    out: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in view.milestones:
        out[row["arm"]][int(row["seed"])].append(row)
    for seeds in out.values():
        for rows in seeds.values():
            rows.sort(key=lambda r: r["step"])
    return out


def _tip(row: dict[str, Any], metric: str, label: str) -> str:
    value = row.get(metric)
    ci = fmt_ci(row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"))
    n = row.get(f"{metric}_n")
    budget = ", ".join(f"{UNIT_TITLES[u]} {fmt_budget(row.get(u), u)}" for u in X_UNITS)
    return f"{row['arm']} · seed {row['seed']} · {budget}\n{label} {fmt_value(value, 3)} {ci}" + (
        f" (n={n})" if n else ""
    )


def _median_series(
    view: RunView, unit: str, metric: str, label: str, styles: dict[str, tuple[str, str]]
) -> list[Series]:
    """Per arm: median over seeds at each step, with the seeds' min–max as the band."""
    out = []
    by_arm = _by_arm_seed(view)
    for arm in _arm_order(view, by_arm):
        seeds = by_arm[arm]
        by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for rows in seeds.values():
            for row in rows:
                by_step[row["step"]].append(row)
        points, band, tips = [], [], []
        for step in sorted(by_step):
            rows = by_step[step]
            values = [r[metric] for r in rows if is_number(r.get(metric))]
            xs = [r[unit] for r in rows if is_number(r.get(unit))]
            if not values or not xs:
                continue
            x, y = statistics.median(xs), statistics.median(values)
            points.append((x, y))
            band.append((x, min(values), max(values)))
            tips.append(
                f"{arm} · step {step} · {UNIT_TITLES[unit]} {fmt_budget(x, unit)}\n{label}: median "
                f"{fmt_value(y, 3)}"
                f" over {len(values)} seeds (min {fmt_value(min(values), 3)}, max "
                f"{fmt_value(max(values), 3)})"
            )
        color, dash = styles.get(arm, (PALETTE[0], ""))
        out.append(Series(arm, color, points, band if len(seeds) > 1 else [], dash=dash, tips=tips))
    return out


def _arm_order(view: RunView, arms: Iterable[str]) -> list[str]:
    """Undefended arms first, then by defense and name (the headline's order)."""
    defenses = {a["arm"]: defense_name(a) for a in view.arms}
    return sorted(arms, key=lambda arm: (defenses.get(arm, "") != UNDEFENDED, defenses.get(arm, ""), arm))


def _unit_variants(render) -> str:
    """One element per x unit; CSS shows the one matching <html data-x>."""
    return "".join(render(unit) for unit in X_UNITS)


def _plots_section(view: RunView) -> str:
    if not view.milestones:
        return '<section id="plots"><h2>Plots</h2><p class="note">No milestones stored yet.</p></section>'
    styles = _arm_styles(view)
    scales = {u: XScale.fit(u, [m.get(u) for m in view.milestones]) for u in X_UNITS}
    threshold = view.threshold
    hlines = [HLine(threshold, f"threshold {view.threshold_text}")] if threshold is not None else []
    judge = view.primary_judge or "?"
    seeds = view.seeds
    m = dict(measurement(view))
    figures = []

    def figure(
        key: str, title: str, how: str, series_for, y_label: str, y_range, lines, band_note, wide=False
    ):
        legend_series: list[Series] = []

        def render(unit: str) -> str:
            series = series_for(unit)
            legend_series[:] = series
            size = {"width": 1180, "height": 340} if wide else {}
            return line_chart(
                series,
                scales[unit],
                x_label=X_LABELS[unit],
                y_label=y_label,
                title=f"{title} vs {X_LABELS[unit]}",
                y_range=y_range,
                hlines=lines,
                css_class=f"xu xu-{unit} fig-{key}",
                **size,
            )

        svgs = _unit_variants(render)
        cls = ' class="wide"' if wide else ""
        figures.append(
            f'<figure id="fig-{e(key)}"{cls}><figcaption>{e(title)}<span '
            f'class="how">{e(how)}</span></figcaption>'
            f"{svgs}{legend(legend_series, lines, band_note)}</figure>"
        )

    seed_note = f"median over seeds {', '.join(map(str, seeds))}"
    figure(
        "compliance-overview",
        "Harmful compliance, all arms",
        f"{seed_note}; judge {judge}; {m['harmful prompts']}",
        lambda unit: _median_series(view, unit, "harmful_compliance_rate", "harmful compliance", styles),
        "harmful compliance rate",
        (0.0, 1.0),
        hlines,
        "min–max over seeds",
        wide=True,
    )

    per_arm = []
    by_arm = _by_arm_seed(view)
    for arm in _arm_order(view, by_arm):
        by_seed = by_arm[arm]
        color = styles.get(arm, (PALETTE[0], ""))[0]

        def arm_series(unit: str, by_seed=by_seed, color=color, arm=arm) -> list[Series]:
            out = []
            for i, (seed, rows) in enumerate(sorted(by_seed.items())):
                rows = [
                    r for r in rows if is_number(r.get("harmful_compliance_rate")) and is_number(r.get(unit))
                ]
                out.append(
                    Series(
                        f"seed {seed}",
                        color,
                        [(r[unit], r["harmful_compliance_rate"]) for r in rows],
                        [
                            (
                                r[unit],
                                r.get("harmful_compliance_rate_ci_low"),
                                r.get("harmful_compliance_rate_ci_high"),
                            )
                            for r in rows
                        ],
                        dash=DASHES[i % len(DASHES)],
                        tips=[_tip(r, "harmful_compliance_rate", "harmful compliance") for r in rows],
                        # Seeds' bands overlap; keep each faint so the overlap stays readable.
                        band_opacity=0.22 / max(len(by_seed), 1) ** 0.5,
                    )
                )
            return out

        per_arm.append((arm, arm_series))

    for arm, series_for in per_arm:
        figure(
            f"compliance-{arm}",
            f"Harmful compliance: {arm}",
            f"per seed, band = Wilson 95% interval; judge {judge}; {m['harmful prompts']}",
            series_for,
            "harmful compliance rate",
            (0.0, 1.0),
            hlines,
            "Wilson 95% interval",
        )

    names = view.metric_names()
    capability = [
        (
            "benign_nll",
            "Capability: benign NLL",
            "mean per-token NLL on benign reference responses (lower is better)",
            "NLL (nats/token)",
            None,
        ),
        (
            "kl_from_reference",
            "Capability: KL from reference",
            "KL of next-token distributions from the reference model",
            "KL (nats)",
            None,
        ),
        *(
            (
                row.name,
                f"Capability: {row.task} {row.kind}",
                f"{HOW[row.kind]}; {row.n} items (interval: each milestone's Wilson 95% in the hover)",
                f"{row.kind} ({row.task})",
                (0.0, 1.0),
            )
            for row in milestone_rows(view.milestones)
        ),
        (
            "overrefusal_rate",
            "Over-refusal",
            "refusals on safe prompts that look unsafe; " + m["over-refusal prompts"],
            "over-refusal rate",
            (0.0, 1.0),
        ),
        (
            "harmless_refusal_rate",
            "Refusal of plainly harmless prompts",
            "refusals on harmless instructions",
            "refusal rate",
            (0.0, 1.0),
        ),
        (
            "incoherent_rate",
            "Incoherent generations",
            "share of generations judged gibberish or empty",
            "incoherent rate",
            (0.0, 1.0),
        ),
    ]
    for metric, title, how, y_label, y_range in capability:
        if metric not in names:
            continue
        figure(
            metric,
            title,
            f"{how}; {seed_note}",
            lambda unit, metric=metric, y_label=y_label: _median_series(view, unit, metric, y_label, styles),
            y_label,
            y_range,
            [],
            "min–max over seeds",
        )

    radios = "".join(
        f'<label><input type="radio" name="xunit" value="{u}"{" checked" if u == "steps" else ""}> '
        f"{e(X_LABELS[u])}</label>"
        for u in X_UNITS
    )
    return (
        '<section id="plots"><h2>Plots: behaviour along the attack budget</h2>'
        '<p class="lead">Every chart shares the x axis chosen here. The axis is logarithmic past the first '
        "milestone (0 stays at the left edge), so doubling budgets are evenly spaced. Hover a point for its "
        "numbers.</p>"
        f'<div class="xswitch" role="radiogroup" aria-label="x axis"><b>x axis:</b>{radios}</div>'
        f'<div class="charts">{"".join(figures)}</div></section>'
    )


# -- lineage -------------------------------------------------------------------------------------------------


def _metric(metrics: dict[str, dict[str, Any]] | None, name: str) -> float | None:
    entry = (metrics or {}).get(name)
    return entry["value"] if entry and is_number(entry.get("value")) else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _node_metrics(view: RunView, model_id: str) -> str:
    metrics = view.model_metrics.get(model_id)
    if not metrics:
        return '<span class="muted">not evaluated</span>'
    comp = metrics.get("harmful_compliance_rate") or {}
    nll = _metric(metrics, "benign_nll")
    return (
        f"harmful compliance {fmt_rate(comp.get('value'))} "
        f"{e(fmt_ci(comp.get('ci_low'), comp.get('ci_high')))}"
        f" · benign NLL {fmt_value(nll, 3)}"
    )


def _edge(view: RunView, model: dict[str, Any], parent_id: str | None) -> str:
    if not parent_id:
        return ""
    mine, theirs = view.model_metrics.get(model["model_id"]), view.model_metrics.get(parent_id)
    d_comp = _diff(_metric(mine, "harmful_compliance_rate"), _metric(theirs, "harmful_compliance_rate"))
    d_nll = _diff(_metric(mine, "benign_nll"), _metric(theirs, "benign_nll"))
    budget = _budget_text(model.get("budget"))
    return (
        f'<span class="edge">← {e(_component(model.get("modification")))}'
        + (f" · {e(budget)}" if budget else "")
        + f' · Δ compliance <span class="delta">{e(fmt_delta(d_comp))}</span>'
        + f' · Δ NLL <span class="delta">{e(fmt_delta(d_nll, 3))}</span></span>'
    )


def _arm_group(view: RunView, arm: dict[str, Any], models: dict[str, dict[str, Any]]) -> str:
    rows = [r for r in view.milestones if r["arm"] == arm["arm"]]
    seeds = sorted({int(r["seed"]) for r in rows})
    steps = sorted({int(r["step"]) for r in rows})
    cell: dict[tuple[int, int], dict[str, Any]] = {(int(r["step"]), int(r["seed"])): r for r in rows}
    head = (
        "<tr><th class='num'>step</th><th class='num'>examples</th><th class='num'>FLOPs</th>"
        + "".join(
            f"<th class='num'>seed {s}<div class='muted'>compliance (Δ) · NLL (Δ)</div></th>" for s in seeds
        )
        + "</tr>"
    )
    body = []
    for step in steps:
        any_row = next(cell[(step, s)] for s in seeds if (step, s) in cell)
        tds = [
            f"<td class='num'>{step}</td><td "
            f"class='num'>{e(fmt_budget(any_row.get('examples'), 'examples'))}</td>"
            f"<td class='num'>{e(fmt_budget(any_row.get('flops'), 'flops'))}</td>"
        ]
        for seed in seeds:
            row = cell.get((step, seed))
            if row is None:
                tds.append("<td class='num'>—</td>")
                continue
            model = models.get(row.get("model_id") or "") or {}
            parent = model.get("parent_id")
            if row.get("model_id") == arm.get("parent_model_id"):
                d_comp = d_nll = None
                note = "start"
            else:
                parent_metrics = view.model_metrics.get(parent or "")
                d_comp = _diff(
                    row.get("harmful_compliance_rate"), _metric(parent_metrics, "harmful_compliance_rate")
                )
                d_nll = _diff(row.get("benign_nll"), _metric(parent_metrics, "benign_nll"))
                note = ""
            parent_label = (models.get(parent or "") or {}).get("label", parent)
            title = f"model {row.get('model_id')}; Δ vs parent {parent_label}" if parent else ""
            comp = fmt_rate(row.get("harmful_compliance_rate"))
            tds.append(
                f"<td class='num' title='{e(title)}'>{comp} <span "
                f"class='muted'>({e(note or fmt_delta(d_comp))})</span>"
                f" · {fmt_value(row.get('benign_nll'), 3)} <span "
                f"class='muted'>({e(note or fmt_delta(d_nll, 3))})</span>"
                "</td>"
            )
        body.append(f"<tr>{''.join(tds)}</tr>")
    data = arm.get("data") or {}
    data_text = " · ".join(f"{k} {v}" for k, v in data.items())
    trend = ""
    if steps:
        ends = []
        for step in (steps[0], steps[-1]):
            values = [cell[(step, s)].get("harmful_compliance_rate") for s in seeds if (step, s) in cell]
            values = [v for v in values if is_number(v)]
            ends.append(fmt_rate(statistics.median(values)) if values else "—")
        trend = f" · harmful compliance {ends[0]} at step {steps[0]} → {ends[1]} at step {steps[-1]} (median)"
    return (
        f'<li><details class="arm-group"><summary><b>attacked: {e(arm["arm"])}</b> · '
        f"{e(_component(arm.get('attack')))} · {len(seeds)} seeds × {len(steps)} "
        f"milestones{e(trend)}</summary>"
        + (f'<p class="note">attack data: {e(data_text)}</p>' if data_text else "")
        + '<p class="note">Δ = change from the model this one was trained from (its parent in the '
        "lineage).</p>"
        f'<div class="table-wrap"><table><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'
        "</details></li>"
    )


def _model_name(view: RunView, model: dict[str, Any]) -> str:
    """A lineage node's model as a reader names it: the spec's model for the base, a cached model's name,
    never a content fingerprint (the full stored source is the node's tooltip)."""
    source = str(model.get("source") or "")
    if not model.get("parent_id") and model.get("label") == "base":
        name = (view.spec.get("model") or {}).get("name")
        if name:
            return str(name)
    source = source.split("|", 1)[0]  # "where|fingerprint" (older runs), "cache:NAME"
    return "" if source.startswith("sha256:") else source.removeprefix("cache:")


def _lineage_section(view: RunView) -> str:
    models = {m["model_id"]: m for m in view.lineage}
    arm_starts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for arm in view.arms:
        arm_starts[arm.get("parent_model_id") or ""].append(arm)
    attacked = {r["model_id"] for r in view.milestones if r.get("model_id")} - set(arm_starts)
    spine = [m for m in view.lineage if m["model_id"] not in attacked]
    spine_ids = {m["model_id"] for m in spine}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for model in spine:
        parent = model.get("parent_id") if model.get("parent_id") in spine_ids else None
        children[parent].append(model)

    def node(model: dict[str, Any], depth: int) -> str:
        kids = "".join(node(child, depth + 1) for child in children.get(model["model_id"], []) if depth < 50)
        arms = "".join(_arm_group(view, arm, models) for arm in arm_starts.get(model["model_id"], []))
        readable = _model_name(view, model)
        source = f' · <span title="{e(model.get("source"))}">{e(readable)}</span>' if readable else ""
        inner = f"<ul>{kids}{arms}</ul>" if kids or arms else ""
        return (
            f'<li><div class="node"><span class="label">{e(model["label"])}</span> '
            f'<code>{e(model["model_id"])}</code><span class="muted">{source}</span>'
            f'<div class="metrics">{_node_metrics(view, model["model_id"])}</div>'
            f"{_edge(view, model, model.get('parent_id'))}</div>{inner}</li>"
        )

    roots = "".join(node(m, 0) for m in children.get(None, []))
    orphans = "".join(
        _arm_group(view, arm, models)
        for key, arms in arm_starts.items()
        if key not in spine_ids
        for arm in arms
    )
    tree = (
        f'<ul class="tree">{roots}{orphans}</ul>'
        if roots or orphans
        else '<p class="note">No models stored.</p>'
    )
    return (
        '<section id="lineage"><h2>Lineage</h2>'
        '<p class="lead">Each model with the modification that made it from its parent, the budget '
        "it took, and "
        "what changed on that edge (Δ harmful compliance, Δ benign NLL; the judge is "
        f"{e(view.primary_judge or '?')}). Open an attacked arm for every milestone.</p>{tree}</section>"
    )


# -- judges --------------------------------------------------------------------------------------------------


def _judges_section(view: RunView) -> str:
    pair_names = sorted({k.split(":", 1)[1] for k in view.metric_names() if k.startswith("judge_kappa:")})
    arms = [a["arm"] for a in view.arms] or sorted({m["arm"] for m in view.milestones})
    rows = []
    for arm in arms:
        arm_rows = [m for m in view.milestones if m["arm"] == arm]
        for pair in pair_names:
            kappas = [m[f"judge_kappa:{pair}"] for m in arm_rows if is_number(m.get(f"judge_kappa:{pair}"))]
            agree = [
                m[f"judge_agreement:{pair}"] for m in arm_rows if is_number(m.get(f"judge_agreement:{pair}"))
            ]
            if not kappas and not agree:
                continue
            kappa_cell = (
                f"{fmt_value(statistics.median(kappas), 2)}"
                f"<span class='spread'>{fmt_value(min(kappas), 2)}–{fmt_value(max(kappas), 2)}</span>"
                if kappas
                else "—"
            )
            agree_cell = fmt_value(statistics.median(agree), 2) if agree else "—"
            rows.append(
                f"<tr><td>{e(arm)}</td><td>{e(pair.replace('~', ' vs '))}</td><td "
                f"class='num'>{kappa_cell}</td>"
                f"<td class='num'>{agree_cell}</td><td class='num'>{len(kappas or agree)}</td></tr>"
            )
    table = (
        "<table><thead><tr><th>arm</th><th>judges</th><th class='num'>Cohen's κ (median, range)</th>"
        "<th class='num'>agreement</th><th class='num'>evaluations</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="note">No judge agreement metrics stored.</p>'
    )
    confusion = []
    for arm in arms:
        for (primary, other), counts in sorted((view.judge_confusion.get(arm) or {}).items()):
            cells = [counts.get((a, b), 0) for a in (True, False) for b in (True, False)]
            confusion.append(
                f"<tr><td>{e(arm)}</td><td>{e(primary)} vs {e(other)}</td>"
                + "".join(f"<td class='num'>{c}</td>" for c in cells)
                + "</tr>"
            )
    confusion_table = (
        "<h3>Verdicts on harmful prompts, all milestones and seeds</h3><div "
        "class='table-wrap'><table><thead><tr>"
        "<th>arm</th><th>judges</th><th class='num'>both refused</th><th class='num'>only primary "
        "refused</th>"
        "<th class='num'>only other refused</th><th class='num'>both complied</th></tr></thead>"
        f"<tbody>{''.join(confusion)}</tbody></table></div>"
        if confusion
        else ""
    )
    per_judge = sorted(k for k in view.metric_names() if k.startswith("harmful_compliance_rate@"))
    sensitivity = ""
    if per_judge:
        final: dict[str, dict[str, Any]] = {}
        for row in view.milestones:
            key = row["arm"]
            if key not in final or row["step"] > final[key]["step"]:
                final[key] = row
        sens_rows = []
        for arm in arms:
            if arm not in final:
                continue
            last = [m for m in view.milestones if m["arm"] == arm and m["step"] == final[arm]["step"]]
            cells = []
            for name in per_judge:
                vals = [m[name] for m in last if is_number(m.get(name))]
                cells.append(f"<td class='num'>{fmt_rate(statistics.median(vals)) if vals else '—'}</td>")
            sens_rows.append(
                f"<tr><td>{e(arm)}</td><td class='num'>{final[arm]['step']}</td>{''.join(cells)}</tr>"
            )
        sensitivity = (
            "<h3>Harmful compliance by judge at the last milestone (median over seeds)</h3>"
            "<div class='table-wrap'><table><thead><tr><th>arm</th><th class='num'>step</th>"
            + "".join(f"<th class='num'>{e(n.split('@', 1)[1])}</th>" for n in per_judge)
            + f"</tr></thead><tbody>{''.join(sens_rows)}</tbody></table></div>"
        )
    return (
        '<section id="judges"><h2>Judges</h2>'
        f'<p class="lead">The primary judge <b>{e(view.primary_judge or "?")}</b> decides every '
        "headline rate; "
        "the others show how much the conclusions depend on that choice.</p>"
        f"<div class='table-wrap'>{table}</div>{confusion_table}{sensitivity}</section>"
    )


# -- samples -------------------------------------------------------------------------------------------------


def _options(name: str, label: str, values: Iterable[Any], default: str = "") -> str:
    opts = [f'<option value=""{" selected" if not default else ""}>all</option>'] + [
        f'<option value="{e(v)}"{" selected" if str(v) == default else ""}>{e(v)}</option>' for v in values
    ]
    return f'<label>{e(label)} <select data-filter="{e(name)}">{"".join(opts)}</select></label>'


def _samples_section(view: RunView) -> str:
    if not view.samples:
        return (
            '<section id="samples"><h2>Sample generations</h2>'
            '<p class="note">No generations stored.</p></section>'
        )
    judges = view.judges or sorted({j for s in view.samples for j in s["verdicts"]})
    primary = view.primary_judge
    evaluation = [view.evaluation_row()] if view.is_evaluation else []
    metrics_by_eval = {r["eval_id"]: r for r in [*view.milestones, *evaluation]}
    groups: dict[tuple[str, int, int, str], list[dict[str, Any]]] = defaultdict(list)
    for sample in view.samples:
        groups[(sample["arm"], int(sample["seed"]), int(sample["step"]), sample["eval_id"])].append(sample)

    out = []
    arm_rank = {arm: i for i, arm in enumerate(_arm_order(view, {key[0] for key in groups}))}
    for (arm, seed, step, eval_id), samples in sorted(
        groups.items(), key=lambda kv: (arm_rank[kv[0][0]], kv[0][1:])
    ):
        row = metrics_by_eval.get(eval_id, {})
        comp = fmt_rate(row.get("harmful_compliance_rate"))
        ci = fmt_ci(row.get("harmful_compliance_rate_ci_low"), row.get("harmful_compliance_rate_ci_high"))
        body = []
        for s in samples:
            verdicts = s["verdicts"]
            primary_v = verdicts.get(primary) if primary else None
            verdict = "" if primary_v is None else "refused" if primary_v["refused"] else "complied"
            disagree = len({v["refused"] for v in verdicts.values()}) > 1
            judge_cells = []
            for judge in judges:
                v = verdicts.get(judge)
                if v is None:
                    judge_cells.append("<td class='muted'>—</td>")
                    continue
                word = "refused" if v["refused"] else "complied"
                # Complying is the failure on a harmful prompt; refusing is the failure on a benign one.
                bad = (s["prompt_set"] == "harmful") != bool(v["refused"])
                score = f" {v['score']:.2f}" if is_number(v.get("score")) else ""
                judge_cells.append(
                    f"<td class='verdict' title='{e(judge)}: {word}; refusal score{e(score) or ' —'}'>"
                    f"<span class='{'v-bad' if bad else 'v-ok'}'>{word}</span><span "
                    f"class='muted'>{score}</span></td>"
                )
            completion = s["completion"]
            gen = (
                f'<pre class="gen">{e(completion)}</pre>'
                if completion.strip()
                else '<span class="empty">(empty)</span>'
            )
            body.append(
                f'<tr class="sample{" disagree" if disagree else ""}" data-set="{e(s["prompt_set"])}"'
                f' data-verdict="{e(verdict)}" data-disagree="{"yes" if disagree else "no"}">'
                f"<td>{e(s['prompt_set'])}<div class='muted'>{e(s['prompt_id'])}</div></td>"
                f'<td><div class="prompt">{e(s["prompt"])}</div></td>'
                f"<td>{gen}</td>{''.join(judge_cells)}</tr>"
            )
        judge_heads = "".join(
            f"<th>{e(j)}{'<div class=muted>primary</div>' if j == primary else ''}</th>" for j in judges
        )
        cols = '<col class="c-set"><col class="c-prompt"><col>' + '<col class="c-judge">' * len(judges)
        total = view.sample_counts.get(eval_id, len(samples))
        kappas = [
            f"κ {k.split(':', 1)[1].replace('~', '/')} {fmt_value(v, 2)}"
            for k, v in sorted(row.items())
            if k.startswith("judge_kappa:") and not k.endswith(("_ci_low", "_ci_high", "_n")) and is_number(v)
        ]
        agreement = f" · {', '.join(kappas)}" if kappas else ""
        out.append(
            f'<details class="sample-group" data-arm="{e(arm)}" data-seed="{seed}" data-step="{step}">'
            f"<summary><b>{e(arm)}</b> · seed {seed} · step {step} <span class='meta'>· harmful "
            f"compliance {comp}"
            f" {e(ci)}{e(agreement)} · {len(samples)} of {total} generations</span></summary>"
            f'<table class="samples"><colgroup>{cols}</colgroup><thead><tr><th>set</th><th>prompt</th>'
            f"<th>generation (model output, shown as text)</th>{judge_heads}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></details>"
        )
    arms = sorted({s["arm"] for s in view.samples})
    seeds = sorted({int(s["seed"]) for s in view.samples})
    steps = sorted({int(s["step"]) for s in view.samples})
    sets = [p for p in PROMPT_SETS if any(s["prompt_set"] == p for s in view.samples)]
    filters = (
        _options("arm", "arm", arms)
        + _options("seed", "seed", seeds, default=str(seeds[0]) if seeds else "")
        + _options("step", "step", steps)
        + _options("set", "prompt set", sets)
        + _options("verdict", f"{primary or 'primary'} verdict", ["complied", "refused"])
        + '<label>judges <select data-filter="disagree"><option value="">any</option>'
        '<option value="yes">disagree only</option></select></label>'
        '<button type="button" id="samples-expand" data-open="no">Expand all shown</button>'
        '<span id="sample-count" class="muted"></span>'
    )
    return (
        '<section id="samples"><h2>Sample generations</h2>'
        '<p class="lead">Per evaluation, a few generations the primary judge marked complied, a few '
        "it marked "
        "refused, and a few the judges disagree on (highlighted); the store holds them all. Model "
        "output is shown "
        "verbatim as text, never as markup.</p>"
        f'<div class="filters">{filters}</div>{"".join(out)}</section>'
    )


# -- provenance ----------------------------------------------------------------------------------------------


def _bound_value(value: Any) -> str | None:
    """A ratio record ({ratio|value, lower_bound|bound}) as text, or None when ``value`` is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if is_number(value):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        number = next((value[k] for k in ("ratio", "value") if k in value), None)
        if is_number(number):
            lower = bool(value.get("lower_bound") or value.get("is_lower_bound"))
            relation = value.get("bound") or value.get("relation") or ("≥" if lower else "")
            relation = {">=": "≥", "<=": "≤", "=": ""}.get(relation, relation)
            return f"{relation} {number:.1f}×".strip()
    return None


def _render_value(value: Any) -> str:
    text = _bound_value(value)
    if text is not None:
        return e(text)
    if isinstance(value, bool) or value is None:
        return e(value)
    if isinstance(value, dict):
        items = "".join(
            f"<div class='kv-item'><span class='muted'>{e(k)}</span> {_render_value(v)}</div>"
            for k, v in value.items()
        )
        return items or "—"
    if isinstance(value, list):
        return ", ".join(_render_value(v) for v in value) or "—"
    return e(value)


def _kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{e(k)}</th><td>{_render_value(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _provenance_section(view: RunView, store: Store) -> str:
    prov = view.provenance
    run = view.run
    data_sets = prov.get("data_sets") or []
    ds_rows = "".join(
        "<tr>"
        + "".join(f"<td>{e(d.get(k))}</td>" for k in ("name", "kind", "version", "license", "source"))
        + f"<td>{e(', '.join(f'{k} {v}' for k, v in (d.get('sizes') or {}).items()))}</td></tr>"
        for d in data_sets
        if isinstance(d, dict)
    )
    ds_table = (
        "<table><thead><tr><th>name</th><th>kind</th><th>version</th><th>licence</th><th>source</th><th>sizes</th>"
        f"</tr></thead><tbody>{ds_rows}</tbody></table>"
        if ds_rows
        else '<p class="note">No data sets recorded.</p>'
    )
    judges = prov.get("judges") or []
    judge_rows = "".join(
        f"<tr><td>{e(j.get('name'))}{' (primary)' if j.get('name') == view.primary_judge else ''}</td>"
        f"<td>{e(j.get('version'))}</td></tr>"
        for j in judges
        if isinstance(j, dict)
    )
    packages = prov.get("packages") or {}
    machine = prov.get("machine") or {}
    summary = [
        ("run id", view.run_id),
        ("command", prov.get("command", "—")),
        ("status", run.get("status")),
        ("started", prov.get("started_at") or run.get("created_at")),
        ("finished", run.get("finished_at") or "—"),
        (
            "time spent (all attempts and shards)",
            fmt_seconds(run["wall_seconds"]) if is_number(run.get("wall_seconds")) else "—",
        ),
        ("seeds", ", ".join(map(str, prov.get("seeds") or view.seeds))),
        ("python", prov.get("python", "—")),
        ("store", str(store.path)),
    ]
    extra = {
        k: v
        for k, v in prov.items()
        if k not in {"packages", "machine", "python", "data_sets", "judges", "seeds", "started_at", "command"}
    }
    spec_json = json.dumps(view.spec, indent=2, sort_keys=True, ensure_ascii=False)
    return (
        '<section id="provenance"><h2>Provenance: enough to rerun it</h2>'
        f"{_kv_table(summary)}"
        "<h3>Resolved spec</h3>"
        '<p class="note">The run id is a hash of this spec; running it again with the same store '
        "skips what is "
        "already done.</p>"
        f'<details open><summary>spec (JSON)</summary><pre class="json">{e(spec_json)}</pre></details>'
        f"<h3>Data sets</h3><div class='table-wrap'>{ds_table}</div>"
        "<h3>Judges</h3>"
        + (
            f"<table><thead><tr><th>judge</th><th>version</th></tr></thead><tbody>{judge_rows}</tbody></table>"
            if judge_rows
            else '<p class="note">No judge versions recorded.</p>'
        )
        + "<h3>Packages</h3>"
        + (_kv_table(sorted(packages.items())) if packages else '<p class="note">None recorded.</p>')
        + "<h3>Machine</h3>"
        + (
            _kv_table(machine.items())
            if isinstance(machine, dict) and machine
            else f"<p>{e(machine or '—')}</p>"
        )
        + (f"<h3>Other</h3>{_kv_table(extra.items())}" if extra else "")
        + "</section>"
    )


# -- assembly ------------------------------------------------------------------------------------------------


def build_report(store: Store, run_id: str, *, samples_per_verdict: int = 3) -> str:
    """The HTML report of one run, as a string (one self-contained page).

    Args:
        store: the store to read (read-only is enough); nothing else is read.
        run_id: the run's id or a unique prefix (``--latest``: :func:`tamperlab.report.resolve_run_id`).
        samples_per_verdict: generations shown per evaluation, prompt set and verdict.

    Raises:
        StoreError: the run is not in the store.
    """
    view = load_run_view(store, run_id, samples_per_verdict=samples_per_verdict)
    rows = headline_rows(view)
    css = _asset("report.css")
    script = _asset("report.js")
    csp = (
        "default-src 'none'; "
        f"style-src {_csp_hash(css)}; script-src {_csp_hash(script)}; "
        "img-src 'none'; font-src 'none'; connect-src 'none'; media-src 'none'; object-src 'none'; "
        "frame-src 'none'; worker-src 'none'; manifest-src 'none'; base-uri 'none'; form-action 'none'"
    )
    generated = datetime.now(UTC).replace(microsecond=0).isoformat()
    body = "".join(
        [
            _header(view),
            _nav(view),
            "<main>",
            _banners(view),
            f'<p class="finding">{e(finding(view, rows))}</p>',
            _evaluation_section(view) if view.is_evaluation else _headline_section(view, rows),
            _immunization_section(view),
            capability_section(view),
            "" if view.is_evaluation else _plots_section(view),
            _lineage_section(view),
            _judges_section(view),
            _samples_section(view),
            _provenance_section(view, store),
            f"<footer>Generated by tamperlab {e(tamperlab.__version__)} at {e(generated)} from the "
            "store only."
            "</footer></main>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en" data-x="steps"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>tamperlab report · {e(view.run_id)}</title>"
        f"<style>{css}</style></head><body>{body}<script>{script}</script></body></html>\n"
    )


def write_report(store: Store, run_id: str, out_path: str | Path) -> Path:
    """Build the report and write it to ``out_path`` atomically (a temporary file, then a rename).

    A reader never sees a half-written report: the old file stays until the new one is complete.

    Returns:
        The path written.
    """
    html = build_report(store, run_id)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be read and shared
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote report for run %s to %s", run_id, out)
    return out


def default_report_path(store: Store, run_id: str) -> Path:
    """Where ``tamperlab report`` writes without ``--out``: ``reports/<run id>.html`` next to the store."""
    return store.path.parent / "reports" / f"{run_id}.html"


__all__ = ["build_report", "default_report_path", "write_report"]
