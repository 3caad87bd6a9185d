"""`tamperlab sweep`: expand a grid, show where it stands, run what is pending, survive being killed.

Order matters for bad input: the grid is loaded and every point validated, then the store is checked
(read-only), then the executor connects, and only then is the store opened for writing. So a bad grid, a
database that is not ours or an unreachable Ray cluster fails with one line and leaves the store's bytes as
they were.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamperlab.store import Store
from tamperlab.sweep import artifacts, faults
from tamperlab.sweep.grid import Grid, GridPoint, Resources, assign_run_ids, expand, load_grid
from tamperlab.sweep.local import LocalExecutor, RunResult
from tamperlab.sweep.state import (
    Claims,
    PointStatus,
    check_store,
    counts,
    open_store,
    statuses,
    store_exists,
    store_target,
)

log = logging.getLogger(__name__)


@dataclass
class SweepOptions:
    """How to run a sweep (the CLI's flags).

    Attributes:
        store: the store's file path or PostgreSQL URL.
        dry_run: list the runs and their status; run nothing, write nothing.
        retry_failed: rerun runs recorded as failed (otherwise they are reported, not rerun).
        executor: ``local`` or ``ray``.
        ray_address: an existing Ray cluster; None starts a local Ray.
        workers: Ray local: runs at once.
        num_cpus / num_gpus: per-run resources, overriding the grid's ``resources``.
        max_retries: Ray: retries of a crashed task, overriding the grid's.
        max_checkpoint_gb: cap on the model cache's run checkpoints.
        wait_seconds: how long to wait for runs another sweep is executing (None: until they finish).
    """

    store: str
    dry_run: bool = False
    retry_failed: bool = False
    executor: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    num_cpus: float | None = None
    num_gpus: float | None = None
    max_retries: int | None = None
    max_checkpoint_gb: float | None = None
    wait_seconds: float | None = None


@dataclass
class SweepReport:
    """What a sweep did and where its grid stands afterwards."""

    grid: Grid
    points: list[GridPoint]
    before: list[PointStatus]
    after: list[PointStatus] = field(default_factory=list)
    results: dict[str, RunResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    merge_seconds: float = 0.0

    @property
    def counts_before(self) -> dict[str, int]:
        return counts(self.before)

    @property
    def counts_after(self) -> dict[str, int]:
        return counts(self.after or self.before)

    @property
    def store_fraction(self) -> float | None:
        """Time in store writes ÷ run time, over the runs this sweep executed."""
        ran = [r for r in self.results.values() if r.seconds > 0]
        total = sum(r.seconds for r in ran)
        return sum(r.store_seconds for r in ran) / total if total else None


def plan(grid_path: str | Path) -> tuple[Grid, list[GridPoint]]:
    """Load, expand and validate a grid; give each point its run id."""
    grid = load_grid(grid_path)
    points = assign_run_ids(expand(grid))
    return grid, points


def current_statuses(target: str, points: list[GridPoint]) -> list[PointStatus]:
    """Statuses without creating or writing the store (a missing store: everything pending)."""
    if not store_exists(target):
        return [PointStatus(p, "pending") for p in points]
    store = open_store(target, readonly=True)
    try:
        return statuses(store, points, Claims(store, target))
    finally:
        store.close()


def _record_failure(store: Store, point: GridPoint, error: str) -> None:
    """Mark a run failed when its executor failed it but the store does not say so (a process that died)."""
    assert point.run_id is not None
    row = store.get_run(point.run_id)
    if row is not None and row["status"] in ("failed", "diverged", "complete"):
        return
    if row is None:
        store.start_run(point.run_id, "run", point.spec.model_dump(mode="json"))
    store.finish_run(point.run_id, "failed", error=error)


def _resources(grid: Grid, options: SweepOptions) -> Resources:
    updates: dict[str, Any] = {}
    if options.num_cpus is not None:
        updates["num_cpus"] = options.num_cpus
    if options.num_gpus is not None:
        updates["num_gpus"] = options.num_gpus
    return grid.spec.resources.model_copy(update=updates)


def run_sweep(grid_path: str | Path, options: SweepOptions, events: Any = None) -> SweepReport:
    """Run a sweep to completion (or list it, with ``dry_run``).

    Args:
        events: an object with ``planned(report)``, ``started(point)``, ``finished(point, result)`` and
            ``waiting(point)`` (the CLI's display); None for silence.
    """
    start = time.perf_counter()
    target = store_target(options.store)
    grid, points = plan(grid_path)
    check_store(target)
    report = SweepReport(grid=grid, points=points, before=current_statuses(target, points))
    if options.dry_run:
        report.after = report.before
        return report

    resources = _resources(grid, options)
    ray_executor = None
    if options.executor == "ray":
        from tamperlab.sweep.ray_executor import RayExecutor

        retries = options.max_retries if options.max_retries is not None else grid.spec.max_retries
        ray_executor = RayExecutor(options.ray_address, options.workers, resources, retries)
        ray_executor.connect()
    elif options.executor != "local":
        from tamperlab.errors import ConfigError

        raise ConfigError(f"--executor {options.executor!r}: choose local or ray")

    if events is not None:
        events.planned(report)
    store = open_store(target)
    claims = Claims(store, target)
    try:
        faults.reached("sweep-start")
        wanted = {"pending"} | ({"failed"} if options.retry_failed else set())
        now = statuses(store, points, claims)
        todo = [s.point for s in now if s.status in wanted]
        busy = [s.point for s in now if s.status == "running"]

        def finished(point: GridPoint, result: RunResult) -> None:
            assert point.run_id is not None
            if result.status == "skipped":
                report.skipped[point.run_id] = result.error or ""
            else:
                report.results[point.run_id] = result
                if result.status == "failed":
                    _record_failure(store, point, result.error or "failed")
                artifacts.clean_after_run(point.run_id, point.spec, result.status)
            if events is not None:
                events.finished(point, result)

        def admit(point: GridPoint) -> str | None:
            return artifacts.over_cap(point.spec, options.max_checkpoint_gb)

        def take(point: GridPoint) -> str:
            """Claim a point: 'mine' (still to run), 'busy' (another sweep has it) or 'settled' (another sweep
            finished it since the statuses were read)."""
            assert point.run_id is not None
            if not claims.try_claim(point.run_id):
                return "busy"
            row = store.get_run(point.run_id)
            status = row["status"] if row else None
            if status in ("complete", "diverged") or (status == "failed" and not options.retry_failed):
                claims.release(point.run_id)
                return "settled"
            faults.reached("run-start")
            if events is not None:
                events.started(point)
            return "mine"

        if ray_executor is not None:
            from tamperlab.sweep.records import export_run, import_run

            def merge(point: GridPoint, records: dict[str, Any]) -> None:
                import_run(store, records, on_write=lambda: faults.reached("merge"))

            def seed(point: GridPoint) -> dict[str, Any]:
                assert point.run_id is not None
                return export_run(store, point.run_id) if store.get_run(point.run_id) else {}

            def run_batch(batch: list[GridPoint]) -> None:
                ray_executor.run_all(
                    batch,
                    seed_records=seed,
                    merge=merge,
                    claim=take,
                    release=lambda p: claims.release(p.run_id or ""),
                    admit=admit,
                    on_result=finished,
                    on_busy=busy.append,
                )
        else:
            explicit_threads = (
                options.num_cpus is not None or "num_cpus" in grid.spec.resources.model_fields_set
            )
            local = LocalExecutor(target, threads=int(resources.num_cpus) if explicit_threads else None)

            def run_batch(batch: list[GridPoint]) -> None:
                for point in batch:
                    assert point.run_id is not None
                    reason = admit(point)
                    if reason is not None:
                        finished(point, RunResult("skipped", reason))
                        continue
                    taken = take(point)
                    if taken == "busy":
                        busy.append(point)
                    if taken != "mine":
                        continue
                    try:
                        result = local.run(point)
                        faults.reached("run-end")
                        finished(point, result)
                    finally:
                        claims.release(point.run_id)

        run_batch(todo)
        # Runs another sweep is executing: wait for its claim to go, then run whatever it left unfinished.
        deadline = None if options.wait_seconds is None else time.monotonic() + options.wait_seconds
        while busy:
            waiting, busy[:] = list(busy), []
            for point in waiting:
                assert point.run_id is not None
                if events is not None:
                    events.waiting(point)
                while claims.is_claimed_elsewhere(point.run_id):
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    time.sleep(1.0)
                else:
                    run_batch([point])  # claims it again, and runs it only if it was left unfinished
        report.after = statuses(store, points, claims)
    finally:
        claims.release_all()
        if ray_executor is not None:
            report.merge_seconds = ray_executor.merge_seconds
            ray_executor.close()
        store.close()
    report.wall_seconds = time.perf_counter() - start
    return report
