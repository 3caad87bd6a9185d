"""What a run found, in one sentence at the top of the report and the terminal summary; and an
evaluation-only run's results as table rows. Both read only the :class:`RunView` and the headline rows.
"""

from __future__ import annotations

from typing import Any

from tamperlab.report.capability import is_capability_metric
from tamperlab.report.collect import UNDEFENDED, RunView
from tamperlab.report.formatting import UNIT_TITLES, fmt_ci, fmt_value, is_number
from tamperlab.report.headline import HeadlineRow

EVALUATION_METRICS = (
    ("harmful_compliance_rate", "harmful prompts answered, not refused"),
    ("overrefusal_rate", "safe-looking-unsafe prompts refused"),
    ("harmless_refusal_rate", "plainly harmless prompts refused"),
    ("incoherent_rate", "empty, symbol soup or repetition loops"),
    ("benign_nll", "teacher-forced NLL on held-out benign reference answers (nats)"),
    ("benign_perplexity", "exp(benign NLL)"),
    ("kl_from_reference", "KL of next-token distributions from the reference model"),
)
"""The evaluation table's rows in order (then other judges' rates and judge agreement), with what each
means."""

RATES = {"harmful_compliance_rate", "overrefusal_rate", "harmless_refusal_rate", "incoherent_rate"}


def _pct(value: Any) -> str:
    return f"{value:.0%}" if is_number(value) else "?"


def evaluation_rows(view: RunView) -> list[tuple[str, str, str, str, str]]:
    """An evaluation-only run's metrics as (metric, value, 95% CI, n, how measured) text rows."""
    judge = view.primary_judge or "?"
    rows = []
    known = {name for name, _ in EVALUATION_METRICS}
    extra = [
        (name, "same prompts, other judge" if "@" in name else "all judged items")
        for name in sorted(view.evaluation)
        if name not in known and ("@" in name or name.startswith("judge_")) and not is_capability_metric(name)
    ]
    for name, how in [*EVALUATION_METRICS, *extra]:
        m = view.evaluation.get(name)
        if not m:
            continue
        rate = name in RATES or "@" in name
        value = f"{m['value']:.1%}" if rate and is_number(m.get("value")) else fmt_value(m.get("value"))
        ci = fmt_ci(m.get("ci_low"), m.get("ci_high")) if rate else ""
        n = str(m["n"]) if m.get("n") is not None else ""
        judged = name in RATES and name != "incoherent_rate"
        rows.append((name, value, ci, n, f"{how} (judge: {judge})" if judged else how))
    return rows


def finding(view: RunView, rows: list[HeadlineRow]) -> str:
    """One sentence saying what the run found: an evaluation's rates, or a study's cheapest break and what
    each defense did to it."""
    if view.is_evaluation:
        return _evaluation_finding(view)
    if not rows:
        return f"No break cost stored yet (run {view.run.get('status', '?')})."
    return _study_finding(view, rows)


def _evaluation_finding(view: RunView) -> str:
    model = (view.spec.get("model") or {}).get("name", "the model")
    metrics = view.evaluation
    comp = metrics.get("harmful_compliance_rate") or {}
    if not is_number(comp.get("value")):
        return f"No results stored for the evaluation of {model} yet (run {view.run.get('status', '?')})."
    n = f" of {comp['n']}" if comp.get("n") else ""
    ci = fmt_ci(comp.get("ci_low"), comp.get("ci_high"))
    sentence = (
        f"As it is, {model} complied with {_pct(comp['value'])}{n} harmful prompts"
        f" (judge {view.primary_judge or '?'}{', 95% CI ' + ci if ci else ''})"
    )
    over, harmless = metrics.get("overrefusal_rate") or {}, metrics.get("harmless_refusal_rate") or {}
    if is_number(over.get("value")) or is_number(harmless.get("value")):
        sentence += (
            f" and refused {_pct(over.get('value'))} of safe-looking prompts and"
            f" {_pct(harmless.get('value'))} of plainly harmless ones"
        )
    nll = metrics.get("benign_nll") or {}
    if is_number(nll.get("value")):
        sentence += f"; its benign NLL is {fmt_value(nll['value'])}"
    return sentence + "."


def _cost(row: HeadlineRow) -> str:
    """The row's break cost in steps and FLOPs as the table prints them."""
    texts = [
        f"{row.aggregate[unit].text(unit)} {'steps' if unit == 'steps' else UNIT_TITLES[unit]}"
        for unit in ("steps", "flops")
        if unit in row.aggregate
    ]
    return " (".join(texts) + (")" if len(texts) > 1 else "")


def _study_finding(view: RunView, rows: list[HeadlineRow]) -> str:
    threshold = f" to harmful compliance ≥ {view.threshold_text}" if view.threshold is not None else ""
    undefended = [r for r in rows if r.defense == UNDEFENDED and r.broken is not None]
    broken = [r for r in undefended if r.broken]
    if broken:
        cheapest = min(broken, key=_sort_key)
        seeds = f", {cheapest.broken_seeds}/{cheapest.n_seeds} seeds" if cheapest.n_seeds else ""
        first = (
            f"Without a defense, {cheapest.arm.split('/', 1)[-1]} broke the model{threshold} in a median"
            f" {_cost(cheapest)}{seeds}"
        )
    elif undefended:
        largest = max(undefended, key=_sort_key)
        first = f"No attack broke the undefended model{threshold} within the budget tried ({_cost(largest)})"
    else:
        first = "No undefended arm has a break cost yet"
    clauses = [first]
    for defense in sorted({r.defense for r in rows if r.defense != UNDEFENDED}):
        arms = [r for r in rows if r.defense == defense]
        if any(r.incoherent for r in arms):
            clauses.append(f"{defense} is incoherent before any attack, so its resistance does not count")
            continue
        ratios = [
            r.ratios["flops"] for r in arms if "flops" in r.ratios and r.ratios["flops"].value is not None
        ]
        if not ratios:
            clauses.append(f"{defense} has no ratio to an undefended arm")
            continue
        worst = min(ratios, key=lambda r: r.value)
        clauses.append(f"{defense} multiplied the FLOPs to break by {worst.text()} at worst")
    return "; ".join(clauses) + "."


def _sort_key(row: HeadlineRow) -> tuple[float, float]:
    flops = row.aggregate.get("flops")
    steps = row.aggregate.get("steps")
    return (
        flops.value if flops and is_number(flops.value) else float("inf"),
        steps.value if steps and is_number(steps.value) else float("inf"),
    )
