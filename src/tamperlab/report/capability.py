"""Capability accuracy as people read it: one row per benchmark and metric, from stored metrics.

Pure functions over the store's metric records (``{name: {value, ci_low, ci_high, n}}``), shared by the
terminal (``tamperlab eval``, ``tamperlab run``), the HTML report and the export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

KIND_ORDER = ("acc", "acc_norm", "acc_macro", "exact_match", "exact_match_flexible")
HOW = {
    "acc": "highest log-likelihood choice (lm-eval acc)",
    "acc_norm": "highest log-likelihood per character of the choice (lm-eval acc_norm)",
    "acc_macro": "mean of the per-subject accuracies",
    "exact_match": "final answer after '####' (lm-eval strict-match)",
    "exact_match_flexible": "last number in the answer (lm-eval flexible-extract)",
}


@dataclass(frozen=True)
class CapabilityRow:
    """One accuracy figure: task label (``mmlu``, ``mmlu@5shot``), metric kind, MMLU subject, value, CI."""

    task: str
    kind: str
    subject: str | None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None

    @property
    def name(self) -> str:
        """The stored metric name."""
        return f"{self.kind}:{self.task}" + (f"/{self.subject}" if self.subject else "")


def is_capability_metric(name: str) -> bool:
    """Whether a stored metric name is a capability accuracy (``acc:mmlu``, ``acc_norm:hellaswag``, ...)."""
    kind, sep, task = name.partition(":")
    return bool(sep and task) and kind in KIND_ORDER


def capability_rows(
    metrics: Mapping[str, Mapping[str, Any]], *, subjects: bool = False
) -> list[CapabilityRow]:
    """The capability rows of an evaluation's metrics, by task then metric kind (per-subject rows only when
    ``subjects``)."""
    rows = []
    for name, m in metrics.items():
        if not is_capability_metric(name):
            continue
        kind, _, rest = name.partition(":")
        task, _, subject = rest.partition("/")
        if subject and not subjects:
            continue
        rows.append(
            CapabilityRow(
                task, kind, subject or None, m.get("value"), m.get("ci_low"), m.get("ci_high"), m.get("n")
            )
        )
    return sorted(rows, key=lambda r: (r.task, r.subject or "", KIND_ORDER.index(r.kind)))


def tasks_of(metrics: Mapping[str, Any]) -> list[str]:
    """The task labels an evaluation's metrics hold, in order."""
    return sorted({r.task for r in capability_rows(metrics)})


def fmt_accuracy(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def fmt_interval(row: CapabilityRow) -> str:
    if row.ci_low is None or row.ci_high is None:
        return ""
    return f"[{row.ci_low:.1%}, {row.ci_high:.1%}]"


def capability_table(
    metrics: Mapping[str, Mapping[str, Any]], title: str, *, subjects: bool = False
) -> Table | None:
    """A rich table of an evaluation's capability accuracy (None when it measured none)."""
    rows = capability_rows(metrics, subjects=subjects)
    if not rows:
        return None
    table = Table(title=title, title_justify="left")
    table.add_column("benchmark", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("95% CI", no_wrap=True)
    table.add_column("n", justify="right")
    table.add_column("how measured", overflow="fold")
    for r in rows:
        task = r.task + (f" / {r.subject}" if r.subject else "")
        table.add_row(Text(task), r.kind, fmt_accuracy(r.value), fmt_interval(r), str(r.n or ""), HOW[r.kind])
    return table


def compare_table(columns: Iterable[tuple[str, Mapping[str, Mapping[str, Any]]]], title: str) -> Table | None:
    """Accuracy of several evaluations side by side (e.g. unaligned, safeguarded, broken): one row per task
    and metric, one column per evaluation (value with its interval); None when none measured any."""
    columns = list(columns)
    names = sorted({r.name for _, m in columns for r in capability_rows(m)})
    if not names:
        return None
    table = Table(title=title, title_justify="left")
    table.add_column("benchmark · metric", no_wrap=True)
    for label, _ in columns:
        table.add_column(Text(label), justify="right")
    table.add_column("n", justify="right")
    for name in names:
        cells = []
        n = ""
        for _, metrics in columns:
            row = next((r for r in capability_rows(metrics) if r.name == name), None)
            cells.append("–" if row is None else f"{fmt_accuracy(row.value)} {fmt_interval(row)}")
            n = str(row.n) if row is not None and row.n else n
        kind, _, task = name.partition(":")
        table.add_row(Text(f"{task} · {kind}"), *cells, n)
    return table


# -- the HTML report's section -------------------------------------------------------------------------


def milestone_rows(milestones: Iterable[Mapping[str, Any]]) -> list[CapabilityRow]:
    """The capability metrics measured at a run's milestones (value None; n from the first that has it)."""
    found: dict[str, dict[str, Any]] = {}
    for row in milestones:
        for key in row:
            if is_capability_metric(key) and key not in found and f"{key}_n" in row:
                found[key] = {"n": row[f"{key}_n"]}
    return capability_rows(found)


def _cell(m: Mapping[str, Any] | None) -> str:
    from html import escape

    if not m or m.get("value") is None:
        return "<td>–</td>"
    row = CapabilityRow("", "acc", None, m["value"], m.get("ci_low"), m.get("ci_high"), m.get("n"))
    value, ci = escape(fmt_accuracy(row.value)), escape(fmt_interval(row))
    return f'<td class="num">{value} <span class="ci">{ci}</span></td>'


def capability_section(view: Any) -> str:
    """The report's "Capability accuracy" section: each model before any attack, then each arm's accuracy at
    its start and at its last milestone (the break, where the trajectory stopped at it), median over seeds.
    Empty when the run measured no capability benchmark."""
    import statistics
    from html import escape

    rows = milestone_rows(view.milestones)
    before = [
        (m, view.model_metrics.get(m["model_id"]) or {})
        for m in view.lineage
        if not m.get("budget") and capability_rows(view.model_metrics.get(m["model_id"]) or {})
    ]
    if not rows and not before:
        return ""
    names = sorted({r.name for _, mm in before for r in capability_rows(mm)} | {r.name for r in rows})
    head = "".join(f"<th>{escape(n.partition(':')[2])} · {escape(n.partition(':')[0])}</th>" for n in names)
    body = "".join(
        f"<tr><th>{escape(str(m.get('label') or m['model_id']))}</th>"
        + "".join(_cell(mm.get(n)) for n in names)
        + "</tr>"
        for m, mm in before
    )
    parts = [
        '<section id="capability"><h2>Capability accuracy</h2>',
        '<p class="lead">Standard benchmarks scored as lm-evaluation-harness scores them (0-shot unless a'
        " task says @Nshot; acc = highest log-likelihood choice, acc_norm = per character of the choice)."
        " Intervals are Wilson 95%; n is the number of items (a fixed, seeded subset where the run names"
        " one).</p>",
        f"<h3>Before any attack</h3><table><thead><tr><th>model</th>{head}</tr></thead><tbody>{body}</tbody>"
        "</table>",
    ]
    if rows:
        by_arm: dict[str, dict[int, list[Mapping[str, Any]]]] = {}
        for r in view.milestones:
            by_arm.setdefault(r["arm"], {}).setdefault(int(r["seed"]), []).append(r)
        lines = []
        for arm in sorted(by_arm):
            seeds = by_arm[arm]
            first = [min(rs, key=lambda r: r["step"]) for rs in seeds.values()]
            last = [max(rs, key=lambda r: r["step"]) for rs in seeds.values()]
            cells = []
            for row in rows:
                a = [r.get(row.name) for r in first if is_number(r.get(row.name))]
                b = [r.get(row.name) for r in last if is_number(r.get(row.name))]
                if not a or not b:
                    cells.append("<td>–</td>")
                    continue
                start, end = statistics.median(a), statistics.median(b)
                cells.append(
                    f'<td class="num">{fmt_accuracy(start)} → {fmt_accuracy(end)} '
                    f'<span class="ci">({(end - start) * 100:+.1f} pts)</span></td>'
                )
            steps = sorted({r["step"] for r in last})
            lines.append(
                f'<tr><th>{escape(arm)}</th><td class="num">{escape(", ".join(map(str, steps)))}</td>'
                + "".join(cells)
                + "</tr>"
            )
        head2 = "".join(f"<th>{escape(r.task)} · {escape(r.kind)} (n={r.n})</th>" for r in rows)
        parts.append(
            "<h3>Along each attack: start → last milestone</h3>"
            '<p class="note">Median over seeds. A trajectory ends at the milestone that breaks it (unless the'
            " run evaluates every milestone), so the last milestone is the break where there was one.</p>"
            f"<table><thead><tr><th>arm</th><th>last step</th>{head2}</tr></thead><tbody>{''.join(lines)}"
            "</tbody></table>"
        )
    parts.append("</section>")
    return "".join(parts)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def last_milestone_metrics(milestones: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per arm, the capability metrics at each seed's last milestone (the break, for a trajectory that stops
    there): the median over seeds, with the interval only when there is one seed."""
    import statistics

    last: dict[str, dict[int, Mapping[str, Any]]] = {}
    for row in milestones:
        seeds = last.setdefault(row["arm"], {})
        seed = int(row["seed"])
        if seed not in seeds or row["step"] > seeds[seed]["step"]:
            seeds[seed] = row
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for arm, seeds in last.items():
        rows = list(seeds.values())
        metrics: dict[str, dict[str, Any]] = {}
        for r in milestone_rows(rows):
            values = [x[r.name] for x in rows if is_number(x.get(r.name))]
            if not values:
                continue
            one = rows[0] if len(rows) == 1 else {}
            metrics[r.name] = {
                "value": statistics.median(values),
                "ci_low": one.get(f"{r.name}_ci_low"),
                "ci_high": one.get(f"{r.name}_ci_high"),
                "n": rows[0].get(f"{r.name}_n"),
            }
        out[arm] = metrics
    return out
