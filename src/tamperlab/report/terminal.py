"""The headline in the terminal: the HTML report's break costs, bounds and ratios, as a rich table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tamperlab.report.capability import (
    capability_table,
    compare_table,
    is_capability_metric,
    last_milestone_metrics,
)
from tamperlab.report.collect import UNDEFENDED, RunView, load_run_view
from tamperlab.report.finding import evaluation_rows, finding
from tamperlab.report.formatting import BUDGET_UNITS, UNIT_TITLES, fmt_delta, fmt_lr, is_number
from tamperlab.report.headline import (
    DefenseSummary,
    headline_rows,
    immunization_defenses,
    immunization_recognised,
    measurement,
    ratio_text,
)
from tamperlab.store import Store


def render_terminal_summary(store: Store, run_id: str, console: Console) -> None:
    """Print one run's headline: break cost per arm (median, spread over seeds, "≥" lower bounds), the
    defended/undefended ratio, how it was measured, and, for a run with defenses, each defense's worst-case
    resistance over the attacker's learning rates with its incoherent flag (the immunization summary).

    Args:
        store: the store to read.
        run_id: the run's id or a unique prefix.
        console: where to print (the CLI's console).
    """
    view = load_run_view(store, run_id, samples_per_verdict=0)
    rows = headline_rows(view)
    console.print(Text(finding(view, rows), style="bold"), highlight=False, soft_wrap=True)
    if view.is_evaluation:
        _evaluation(view, console)
        return
    has_defense = any(r.defense != UNDEFENDED for r in rows)

    table = Table(
        title=Text(f"Break cost · run {view.run_id} ({view.run.get('status')})"),
        caption="≥ = not broken within the largest budget tried (a lower bound). "
        "Below each median: min–max over seeds. A diverged trajectory (NaN loss) is neither broken nor a"
        " lower bound: it is left out.",
        show_lines=True,
    )
    table.add_column("arm", style="bold", no_wrap=True)
    table.add_column("result")
    for unit in BUDGET_UNITS:
        table.add_column(UNIT_TITLES[unit], justify="right")
    if has_defense:
        table.add_column("defended / undefended", justify="right")

    for row in rows:
        if row.broken is None and row.diverged:
            result = Text("diverged: no break cost", style="magenta")
        elif row.broken is None:
            result = Text("not computed", style="yellow")
        elif row.broken:
            result = Text("broken", style="red")
        else:
            result = Text("not broken within budget", style="green")
        if row.n_seeds:
            result.append(f"\n{row.broken_seeds}/{row.n_seeds} seeds broke", style="dim")
        if row.diverged:
            result.append(f"\n{row.diverged_text()} (left out)", style="magenta")
        cells: list[Text] = [Text(row.arm), result]  # Text, not str: names from the store are not markup
        for unit in BUDGET_UNITS:
            cost = row.aggregate.get(unit)
            cell = Text(cost.text(unit) if cost else "—")
            spread = row.spread(unit)
            if spread:
                cell.append(f"\n{spread}", style="dim")
            cells.append(cell)
        if has_defense:
            if row.defense == UNDEFENDED:
                cells.append(Text("baseline", style="dim"))
            elif row.incoherent:
                cells.append(Text("incoherent defense: not resistance", style="bold red"))
            elif row.ratios:
                cells.append(Text("\n".join(f"{r.text()} {UNIT_TITLES[u]}" for u, r in row.ratios.items())))
            else:
                cells.append(Text("no undefended arm", style="dim"))
        table.add_row(*cells)
    if not rows:
        console.print(Text(f"No break cost stored for run {view.run_id} yet.", style="yellow"))
    else:
        console.print(table)
    for what, how in measurement(view):
        console.print(Text.assemble((f"{what}: ", "dim"), how), highlight=False, soft_wrap=True)
    _capability(view, console)
    _immunization(view, console)


def _capability(view: RunView, console: Console) -> None:
    """Capability accuracy of each model before any attack and of each arm at its last milestone."""
    before = [
        (str(m.get("label") or m["model_id"]), view.model_metrics.get(m["model_id"]) or {})
        for m in view.lineage
        if not m.get("budget")
    ]
    after = [
        (f"{arm} (last)", metrics) for arm, metrics in sorted(last_milestone_metrics(view.milestones).items())
    ]
    table = compare_table(
        before + after,
        "Capability accuracy (lm-eval conventions; before any attack, then each arm's last milestone, median"
        " over seeds)",
    )
    if table is not None:
        console.print(table)


def _evaluation(view: RunView, console: Console) -> None:
    """An evaluation-only run: its metrics (no attack, so no break cost) and how they were measured."""
    table = Table(
        title=Text(f"Evaluation · run {view.run_id} ({view.run.get('status')})"), title_justify="left"
    )
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("95% CI (Wilson)", no_wrap=True)
    table.add_column("n", justify="right")
    table.add_column("how measured")
    for cells in evaluation_rows(view):
        table.add_row(*(Text(c) for c in cells))
    if table.row_count:
        console.print(table)
    else:
        console.print(Text(f"No metrics stored for run {view.run_id} yet.", style="yellow"))
    accuracy = capability_table(view.evaluation, "Capability accuracy (lm-eval conventions)")
    if accuracy is not None:
        console.print(accuracy)
    for what, how in measurement(view):
        console.print(Text.assemble((f"{what}: ", "dim"), how), highlight=False, soft_wrap=True)


def _immunization(view: RunView, console: Console) -> None:
    """The immunization headline: per defense and attack family, the worst case over the attacker's learning
    rates (or "incoherent"); then per defense its coherence and the other three conditions in brief."""
    summary = view.summaries.get("immunization")
    if not summary:
        return
    if not immunization_recognised(summary):
        console.print(Text("Immunization summary in an unknown shape: see the HTML report.", style="yellow"))
        return
    defenses = immunization_defenses(summary)
    if not defenses:
        return
    criteria = summary.get("criteria") or {}
    resistance = Table(
        title=Text("Immunization · resistance, worst case over the attacker's learning rates"),
        caption="defended ÷ undefended break cost; ≥ = the defended arm never broke (a lower bound), "
        "≤ = the undefended arm never broke (an upper bound); “≥ a, ≤ b”: the worst lies between an unbroken "
        "setting's lower bound and another setting's measured ratio",
        show_lines=True,
    )
    resistance.add_column("defense", style="bold", no_wrap=True)
    resistance.add_column("attack family")
    resistance.add_column(UNIT_TITLES["flops"], justify="right", no_wrap=True)
    resistance.add_column("examples", justify="right", no_wrap=True)
    resistance.add_column("worst at")
    for d in defenses:
        if d.incoherent:
            flag = Text("INCOHERENT before any attack: not counted as resistance", style="bold red")
            resistance.add_row(Text(d.label), flag, Text("—"), Text("—"), Text(""))
            continue
        for case in d.worst:
            if case.flops is None and case.examples is None:
                cells = [Text(case.text, style="yellow"), Text("—"), Text("")]
            else:
                where = Text(case.where(d.rows) or f"lr {fmt_lr(None)}")
                if len(case.arms) > 1:
                    where.append(f" (of {len(case.arms)} learning rates)", style="dim")
                cells = [Text(case.ratio("flops"), style="bold"), Text(case.ratio("examples")), where]
            if d.over_refusing:
                cells[-1].append("\nthe defended model over-refuses", style="yellow")
            relation = f" ({case.relation})" if case.relation else ""
            resistance.add_row(Text(d.label), Text(case.label + relation), *cells)
        if not d.worst:
            resistance.add_row(
                Text(d.label), Text("no harmful attack", style="dim"), Text("—"), Text("—"), Text("")
            )
    console.print(resistance)

    conditions = Table(
        title=Text("Immunization · the other conditions, per defense"),
        caption=Text(
            "incoherent = before any attack, incoherent rate > "
            f"{_num(criteria.get('incoherent_rate_above'))} or benign NLL > "
            f"{_num(criteria.get('benign_nll_ratio_above'))} × undefended's: none of its resistance counts. "
            "over-refuses = before any attack, over-refusal or harmless refusal > undefended's + "
            f"{_num(criteria.get('overrefusal_rise_above'))}: its resistance counts, but partly comes from "
            "refusing everything"
        ),
        show_lines=True,
    )
    conditions.add_column("defense", style="bold", no_wrap=True)
    conditions.add_column("coherent? over-refuses?")
    conditions.add_column("generalization (worst, FLOPs)")
    conditions.add_column("stability (vs undefended)")
    conditions.add_column("trainability (benign fine-tuning)")
    for d in defenses:
        conditions.add_row(Text(d.label), _coherence(d), _generalization(d), _stability(d), _trainability(d))
    console.print(conditions)


def _num(value: object) -> str:
    return f"{value:g}" if is_number(value) else "?"


def _coherence(d: DefenseSummary) -> Text:
    if d.incoherent:
        text = Text("INCOHERENT", style="bold red")
        for reason in d.reasons:
            text.append(f"\n{reason}", style="red")
    else:
        text = Text("coherent", style="green")
    if d.over_refusing:
        text.append("\nOVER-REFUSES", style="bold yellow")
        for reason in d.over_refusing_reasons:
            text.append(f"\n{reason}", style="yellow")
    return text


def _generalization(d: DefenseSummary) -> Text:
    if d.incoherent:
        return Text("incoherent: not counted", style="red")
    general = d.entry.get("generalization") or {}
    inside, held_out = ratio_text(general.get("in_distribution")), ratio_text(general.get("held_out"))
    return Text(f"in-distribution {inside}\nheld-out {held_out}")


def _stability(d: DefenseSummary) -> Text:
    stability = d.entry.get("stability") or {}
    nll = stability.get("benign_nll") or {}
    parts = []
    if is_number(nll.get("ratio")):
        parts.append(f"benign NLL ×{nll['ratio']:.3g}")
    accuracy = [(m, m.partition(":")[2] + " " + m.partition(":")[0]) for m in sorted(stability)]
    for metric, name in (("overrefusal_rate", "over-refusal"), ("incoherent_rate", "incoherent"), *accuracy):
        if metric in ("overrefusal_rate", "incoherent_rate") or is_capability_metric(metric):
            entry = stability.get(metric) or {}
            if is_number(entry.get("difference")):
                parts.append(f"{name} {fmt_delta(entry['difference'])}")
    return Text("\n".join(parts) or "—")


def _trainability(d: DefenseSummary) -> Text:
    lines = []
    for t in d.entry.get("trainability") or []:
        if isinstance(t, dict) and is_number(t.get("ratio")):
            lines.append(f"train loss ×{t['ratio']:.3g} at step {t.get('step')}")
    return Text("\n".join(lines) or "—", style="" if lines else "dim")
