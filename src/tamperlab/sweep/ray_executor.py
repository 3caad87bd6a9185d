"""The Ray executor: a sweep's runs as Ray tasks, on a local Ray started for the user or an existing cluster.

Results are written to the store by the driver, never by the workers: a worker runs the pipeline against a
private SQLite file, seeded with whatever the shared store already holds for that run (so a retried or resumed
run skips its committed milestones), and returns the run's rows as plain records; the driver writes them in
one transaction (:mod:`tamperlab.sweep.records`). So workers need no access to the store (a PostgreSQL
password or a path on the driver's disk), a half-finished task leaves nothing in it, and the store sees one
writer per sweep. The cost: a task killed mid-run loses the milestones it measured since it started (at most
one run's work).

Each task declares what it needs (``num_cpus``, ``num_gpus``: the grid's ``resources`` or the flags) and is
retried up to ``max_retries`` times when its worker crashes or it raises an unexpected error. Bad input
(:class:`~tamperlab.errors.TamperlabError`) and divergence are outcomes, recorded without retry.

Ray is imported only in this module (the ``ray`` extra).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tamperlab.errors import TamperlabError
from tamperlab.sweep.grid import GridPoint, Resources
from tamperlab.sweep.local import STATUS_BY_RESULT, RunResult

log = logging.getLogger(__name__)


class ExecutorError(TamperlabError):
    """The executor cannot start: Ray missing, or the cluster unreachable."""


class RunCrashed(Exception):
    """A run raised something other than a TamperlabError on a worker: Ray retries it."""


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast, with one line, when ``host:port`` (or ``ray://host:port``) does not answer.

    ``ray.init`` on an address nobody listens at retries for minutes before giving up.
    """
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"--ray-address {address!r} is not of the form host:port or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ExecutorError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def execute_on_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: one run against a private SQLite store; returns its status and every row it holds."""
    from tamperlab.config import RunSpec, validate
    from tamperlab.errors import DivergedError
    from tamperlab.pipeline import Pipeline
    from tamperlab.store import Store
    from tamperlab.sweep import faults
    from tamperlab.sweep.records import export_run, import_run
    from tamperlab.sweep.worker import time_store_writes

    threads = payload.get("threads")
    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    start = time.perf_counter()
    spec = validate(RunSpec, payload["spec"], "sweep run")
    with tempfile.TemporaryDirectory(prefix="tamperlab-ray-run-") as tmp:
        store = Store(Path(tmp) / "run.sqlite")
        if payload.get("records"):
            import_run(store, payload["records"])
        spent = time_store_writes(store)
        pipeline = Pipeline(spec, store)
        status, error = "complete", None
        try:
            faults.crash_once(pipeline.run_id)
            pipeline.execute()
        except DivergedError as exc:
            status, error = "diverged", str(exc)
        except TamperlabError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:
            raise RunCrashed(f"{type(exc).__name__}: {exc}") from exc
        records = export_run(store, pipeline.run_id)
        store.close()
    return {
        "run_id": pipeline.run_id,
        "status": status,
        "error": error,
        "records": records,
        "seconds": time.perf_counter() - start,
        "store_seconds": spent[0],
        "host": socket.gethostname(),
    }


class RayExecutor:
    """Submits runs to Ray, at most as many at once as the cluster can hold, and merges results in the driver.

    Args:
        address: an existing cluster (``host:port``, ``ray://host:port`` or ``auto``); None starts a local
        Ray.
        workers: for a local Ray, how many runs at once (default: CPUs ÷ ``resources.num_cpus``).
        resources: what each run needs.
        max_retries: retries of a task whose worker crashed or raised unexpectedly.
    """

    name = "ray"

    def __init__(
        self, address: str | None, workers: int | None, resources: Resources, max_retries: int
    ) -> None:
        self.address = address
        self.workers = workers
        self.resources = resources
        self.max_retries = max_retries
        self.merge_seconds = 0.0
        self.started_here = False
        self._ray: Any = None

    def connect(self) -> None:
        """Start or join Ray (before the sweep writes anything, so a bad address changes nothing)."""
        if self.address:
            check_address(self.address)
        try:
            import ray
        except ImportError:
            raise ExecutorError('the Ray executor needs ray: pip install "tamperlab[ray]"') from None
        self._ray = ray
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if self.address:
            kwargs["address"] = self.address
        else:
            cpus = os.cpu_count() or 1
            workers = self.workers or max(1, int(cpus // max(self.resources.num_cpus, 1e-3)))
            kwargs["num_cpus"] = max(1, math.ceil(workers * self.resources.num_cpus))
            self.started_here = True
        log.info(
            "Ray: %s",
            f"joining {self.address}" if self.address else f"starting with {kwargs['num_cpus']} CPUs",
        )
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise ExecutorError(f"cannot start {where}: {first}") from None

    def capacity(self) -> int:
        """Runs the cluster can hold at once under the declared resources."""
        ray = self._ray
        total = ray.cluster_resources()
        fits = []
        if self.resources.num_cpus > 0:
            fits.append(int(total.get("CPU", 0) // self.resources.num_cpus))
        if self.resources.num_gpus > 0:
            fits.append(int(total.get("GPU", 0) // self.resources.num_gpus))
        if self.workers:
            fits.append(self.workers)
        return max(1, min(fits) if fits else 1)

    def run_all(
        self,
        points: Iterable[GridPoint],
        *,
        seed_records: Callable[[GridPoint], dict[str, Any]],
        merge: Callable[[GridPoint, dict[str, Any]], None],
        claim: Callable[[GridPoint], str],
        release: Callable[[GridPoint], None],
        admit: Callable[[GridPoint], str | None],
        on_result: Callable[[GridPoint, RunResult], None],
        on_busy: Callable[[GridPoint], None],
    ) -> None:
        """Execute points, keeping at most :meth:`capacity` in flight; the callbacks are the driver's
        bookkeeping.

        ``admit`` returns a reason a point may not start now (disk cap), ``claim`` takes its claim ('mine',
        'busy' or 'settled': finished elsewhere meanwhile), ``merge`` writes a finished task's records,
        ``on_busy`` receives points another sweep holds.
        """
        ray = self._ray
        remote = ray.remote(execute_on_worker).options(
            num_cpus=self.resources.num_cpus,
            num_gpus=self.resources.num_gpus,
            max_retries=self.max_retries,
            retry_exceptions=[RunCrashed],
        )
        queue = list(points)
        window = self.capacity()
        threads = max(1, int(self.resources.num_cpus)) if self.resources.num_cpus >= 1 else 1
        in_flight: dict[Any, tuple[GridPoint, float]] = {}
        while queue or in_flight:
            while queue and len(in_flight) < window:
                point = queue.pop(0)
                reason = admit(point)
                if reason is not None:
                    on_result(point, RunResult("skipped", reason))
                    continue
                taken = claim(point)
                if taken == "busy":
                    on_busy(point)
                if taken != "mine":
                    continue
                payload = {
                    "spec": point.spec.model_dump(mode="json"),
                    "records": seed_records(point),
                    "threads": threads,
                }
                in_flight[remote.remote(payload)] = (point, time.perf_counter())
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                point, started = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # retries exhausted: RayTaskError, WorkerCrashedError, ...
                    cause = getattr(exc, "cause", None) or exc
                    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
                    on_result(
                        point,
                        RunResult(
                            "failed",
                            f"{first} (after {self.max_retries} retries)",
                            time.perf_counter() - started,
                        ),
                    )
                    release(point)
                    continue
                if result["run_id"] != point.run_id:  # the worker fingerprinted a different model file
                    raise ExecutorError(
                        f"run {point.run_id} came back as {result['run_id']} from {result['host']}: "
                        "the model at "
                        f"{point.spec.model.name} differs there from the driver's"
                    )
                merge_start = time.perf_counter()
                merge(point, result["records"])
                self.merge_seconds += time.perf_counter() - merge_start
                status = STATUS_BY_RESULT.get(result["status"], "failed")
                on_result(
                    point,
                    RunResult(
                        status,
                        result["error"],
                        result["seconds"],
                        result["store_seconds"] + time.perf_counter() - merge_start,
                    ),
                )
                release(point)

    def close(self) -> None:
        if self._ray is not None and self.started_here:
            self._ray.shutdown()
