"""One run in its own process: ``python -m tamperlab.sweep.worker`` (the local executor starts it).

It reads a JSON payload on stdin (``store``, ``spec``, ``result``: where to write its result, optional
``threads``), executes the pipeline against the store, and writes ``{"status", "error", "seconds",
"store_seconds"}`` to the result file. Exit code: 0 complete, 3 diverged, 2 bad input, 1 crashed.

A run process must not outlive the sweep that started it: on Linux it asks the kernel for SIGKILL when its
parent dies, and everywhere a watchdog thread exits when the parent is gone. So a killed sweep leaves no run
process writing to the store behind it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PARENT_ENV = "TAMPERLAB_SWEEP_PARENT"


def die_with_parent(parent: int) -> None:
    """Exit (SIGKILL on Linux) as soon as ``parent`` is no longer this process's parent."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(137)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(137)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def time_store_writes(store: Any) -> list[float]:
    """Accumulate the seconds ``store`` spends in write transactions (lock waits included) into the list."""
    spent = [0.0]
    plain = store.transaction

    @contextmanager
    def transaction() -> Iterator[Any]:
        start = time.perf_counter()
        try:
            with plain() as conn:
                yield conn
        finally:
            spent[0] += time.perf_counter() - start

    store.transaction = transaction
    return spent


def main() -> int:
    parent = os.environ.get(PARENT_ENV)
    if parent:
        die_with_parent(int(parent))
        # Ctrl-C reaches the whole terminal group; the sweep handles it. Left to the pipeline, it would
        # record the run as failed, and a plain rerun does not retry failed runs. Killed with the sweep
        # instead, the run stays 'running' and the next sweep resumes it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    payload = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if payload.get("threads"):
        import torch

        torch.set_num_threads(max(1, int(payload["threads"])))

    from tamperlab.config import RunSpec, validate
    from tamperlab.errors import DivergedError, TamperlabError
    from tamperlab.pipeline import Pipeline
    from tamperlab.sweep import faults
    from tamperlab.sweep.state import open_store

    start = time.perf_counter()
    store = open_store(payload["store"])
    spent = time_store_writes(store)
    faults.instrument_store(store)
    status, error, code = "complete", None, 0
    try:
        Pipeline(validate(RunSpec, payload["spec"], "sweep run"), store).execute()
    except DivergedError as exc:
        status, error, code = "diverged", str(exc), 3
    except TamperlabError as exc:
        status, error, code = "failed", str(exc), 2
    except (
        Exception
    ) as exc:  # a crash: the pipeline has recorded the run as failed; keep the traceback in the log
        traceback.print_exc()
        status, error, code = "failed", f"{type(exc).__name__}: {exc}", 1
    result = {
        "status": status,
        "error": error,
        "seconds": time.perf_counter() - start,
        "store_seconds": spent[0],
    }
    with open(payload["result"], "w") as fh:
        json.dump(result, fh)
    return code


if __name__ == "__main__":
    sys.exit(main())
