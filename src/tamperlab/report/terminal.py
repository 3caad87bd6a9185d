"""The headline in the terminal: the HTML report's break costs, bounds and ratios, as a rich table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tamperlab.report.collect import UNDEFENDED, load_run_view
from tamperlab.report.formatting import BUDGET_UNITS, UNIT_TITLES
from tamperlab.report.headline import headline_rows, measurement
from tamperlab.store import Store


def render_terminal_summary(store: Store, run_id: str, console: Console) -> None:
    """Print one run's headline: break cost per arm (median, spread over seeds, "≥" lower bounds), the
    defended/undefended ratio, and how it was measured.

    Args:
        store: the store to read.
        run_id: the run's id or a unique prefix.
        console: where to print (the CLI's console).
    """
    view = load_run_view(store, run_id, samples_per_verdict=0)
    rows = headline_rows(view)
    has_defense = any(r.defense != UNDEFENDED for r in rows)

    table = Table(
        title=Text(f"Break cost · run {view.run_id} ({view.run.get('status')})"),
        caption="≥ = not broken within the largest budget tried (a lower bound). "
        "Below each median: min–max over seeds.",
        show_lines=True,
    )
    table.add_column("arm", style="bold", no_wrap=True)
    table.add_column("result")
    for unit in BUDGET_UNITS:
        table.add_column(UNIT_TITLES[unit], justify="right")
    if has_defense:
        table.add_column("defended / undefended", justify="right")

    for row in rows:
        if row.broken is None:
            result = Text("not computed", style="yellow")
        elif row.broken:
            result = Text("broken", style="red")
        else:
            result = Text("not broken within budget", style="green")
        if row.n_seeds:
            result.append(f"\n{row.broken_seeds}/{row.n_seeds} seeds broke", style="dim")
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
                cells.append(Text("incoherent: not resistance", style="bold red"))
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
