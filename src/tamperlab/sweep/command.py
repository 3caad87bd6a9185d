"""The ``tamperlab sweep`` command (a Typer function; ``tamperlab.cli`` registers it with its error handling).

Exit codes: 0 when every run of the grid is done or diverged, 1 when some failed or are still pending (another
sweep still holding them, or a disk cap), 2 for bad input (the CLI's ``cli_errors``).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tamperlab import paths
from tamperlab.sweep.grid import GridPoint
from tamperlab.sweep.local import RunResult
from tamperlab.sweep.runner import SweepOptions, SweepReport, run_sweep
from tamperlab.sweep.state import describe_counts

out = Console()
err = Console(stderr=True)

STYLE = {"done": "green", "pending": "yellow", "running": "cyan", "failed": "red", "diverged": "magenta"}


class ExecutorName(enum.StrEnum):
    local = "local"
    ray = "ray"


class _Events:
    """Prints one line per run as the sweep goes."""

    def __init__(self, retry_failed: bool) -> None:
        self.retry_failed = retry_failed
        self.total = 0
        self.n = 0

    def planned(self, report: SweepReport) -> None:
        before = report.counts_before
        self.total = before["pending"] + (before["failed"] if self.retry_failed else 0)
        err.print(
            f"{report.grid.spec.name}: {len(report.points)} runs · {describe_counts(before)}", highlight=False
        )

    def started(self, point: GridPoint) -> None:
        self.n += 1
        err.print(
            f"[bold]run {self.n}/{self.total}[/bold] {point.run_id}  {escape(point.label)}", highlight=False
        )

    def finished(self, point: GridPoint, result: RunResult) -> None:
        if result.status == "skipped":
            err.print(
                f"  [yellow]not started[/yellow] {point.run_id}: {escape(result.error or '')}",
                highlight=False,
            )
            return
        style = STYLE.get(result.status, "white")
        line = f"  [{style}]{result.status}[/{style}] {point.run_id} in {result.seconds:.0f}s"
        if result.error:
            line += f": {escape(result.error)}"
        if result.status == "failed" and result.log:
            line += f"  (log: {result.log})"
        err.print(line, highlight=False, soft_wrap=True)

    def waiting(self, point: GridPoint) -> None:
        err.print(f"  waiting for another sweep running {point.run_id}", highlight=False)


def _table(report: SweepReport) -> Table:
    table = Table(
        title=f"{report.grid.spec.name}: {len(report.points)} runs ({report.grid.source})",
        title_justify="left",
    )
    for col in ("#", "run id", "status", "point"):
        table.add_column(col, overflow="fold")
    rows = report.after or report.before
    for row in rows:
        style = STYLE.get(row.status, "white")
        status = f"[{style}]{row.status}[/{style}]"
        table.add_row(str(row.point.index + 1), row.point.run_id or "", status, escape(row.point.label))
    return table


def sweep_command(
    grid: Annotated[Path, typer.Argument(help="Grid YAML: a base RunSpec and the axes that vary it.")],
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="SQLite file or postgresql:// URL (default: $TAMPERLAB_HOME/store.sqlite)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the runs and their status; run nothing.")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Rerun failed runs (otherwise they are reported, not rerun)."),
    ] = False,
    executor: Annotated[
        ExecutorName, typer.Option("--executor", help="local: one process per run, in order. ray: Ray tasks.")
    ] = ExecutorName.local,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Existing Ray cluster (host:port); default: start one here."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Ray started here: runs at once.")
    ] = None,
    num_cpus: Annotated[
        float | None, typer.Option("--num-cpus", min=0, help="CPUs per run (torch threads).")
    ] = None,
    num_gpus: Annotated[float | None, typer.Option("--num-gpus", min=0, help="GPUs per run (Ray).")] = None,
    max_retries: Annotated[
        int | None,
        typer.Option("--max-retries", min=0, help="Ray: retries of a crashed task (default: grid's)."),
    ] = None,
    max_checkpoint_gb: Annotated[
        float | None,
        typer.Option("--max-checkpoint-gb", min=0, help="Cap on disk for kept milestone checkpoints."),
    ] = None,
) -> None:
    """Expand a grid into runs, show how many are done / pending / failed, and run the pending ones."""
    options = SweepOptions(
        store=store or str(paths.default_store_path()),
        dry_run=dry_run,
        retry_failed=retry_failed,
        executor=executor.value,
        ray_address=ray_address,
        workers=workers,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        max_retries=max_retries,
        max_checkpoint_gb=max_checkpoint_gb,
    )
    if dry_run:
        report = run_sweep(grid, options)
        out.print(_table(report))
        out.print(describe_counts(report.counts_before), highlight=False)
        return
    report = run_sweep(grid, options, events=_Events(retry_failed))
    after = report.counts_after
    out.print(_table(report))
    line = f"{describe_counts(after)}  ·  {report.wall_seconds:.0f}s"
    if report.store_fraction is not None:
        line += f"  ·  store writes {report.store_fraction:.1%} of run time"
    out.print(line, highlight=False)
    for run_id, reason in report.skipped.items():
        err.print(
            f"[yellow]not started:[/yellow] {run_id}: {escape(reason)}", highlight=False, soft_wrap=True
        )
    if after["failed"] and not retry_failed:
        err.print(
            f"[red]{after['failed']} failed[/red]: see `tamperlab ls`; rerun them with --retry-failed",
            highlight=False,
        )
    if after["failed"] or after["pending"] or after["running"]:
        raise typer.Exit(1)
