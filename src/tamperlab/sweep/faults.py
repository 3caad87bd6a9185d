"""Crash points for the reliability tests: SIGKILL a sweep at a chosen moment, mid-write included.

``TAMPERLAB_SWEEP_KILL="POINT@N,..."`` kills the sweep's whole process group with SIGKILL the Nth time
(default 1st) this process reaches POINT. Nothing happens when the variable is unset, which is always outside
tests.

Points:
    ``sweep-start``      the driver, after the grid is expanded and the store opened, before any run;
    ``run-start``        the driver, a run claimed, before its process starts;
    ``run-end``          the driver, a run's process finished, before the sweep records and cleans up;
    ``store-commit``     a run process, inside a store transaction, after its statements, before COMMIT;
    ``store-committed``  a run process, right after a store transaction commits;
    ``merge``            the Ray driver, inside the transaction that writes a run's records, before COMMIT.

``TAMPERLAB_SWEEP_CRASH_ONCE=DIR`` makes a Ray task raise once per run (a marker file in DIR remembers), which
the Ray executor must retry.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENV = "TAMPERLAB_SWEEP_KILL"
CRASH_ONCE_ENV = "TAMPERLAB_SWEEP_CRASH_ONCE"
POINTS = ("sweep-start", "run-start", "run-end", "store-commit", "store-committed", "merge")

_reached: Counter[str] = Counter()


def _targets() -> dict[str, int]:
    spec = os.environ.get(ENV, "")
    out = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition("@")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown crash point {name!r} (known: {', '.join(POINTS)})")
        out[name] = int(nth or 1)
    return out


def armed() -> bool:
    return bool(os.environ.get(ENV))


def reached(point: str) -> None:
    """Count ``point``; SIGKILL the process group when it is the configured occurrence."""
    targets = _targets()
    if point not in targets:
        return
    _reached[point] += 1
    if _reached[point] == targets[point]:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def instrument_store(store: Any) -> None:
    """Make ``store``'s transactions pass the ``store-commit`` and ``store-committed`` points (when armed)."""
    targets = _targets()
    if not ({"store-commit", "store-committed"} & set(targets)):
        return
    plain = store.transaction

    @contextmanager
    def transaction() -> Iterator[Any]:
        with plain() as conn:
            yield conn
            reached("store-commit")
        reached("store-committed")

    store.transaction = transaction


def crash_once(run_id: str) -> None:
    """Raise RuntimeError the first time ``run_id`` gets here (when armed)."""
    where = os.environ.get(CRASH_ONCE_ENV)
    if not where:
        return
    marker = Path(where) / run_id
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return
    raise RuntimeError(f"injected crash of {run_id} ({CRASH_ONCE_ENV})")
