"""Where a sweep stands: each point's status from the store's runs table, and claims on runs in flight.

The runs table is the only record of progress; a sweep keeps no state of its own, so a sweep killed at any
moment is restarted by running the same command. A run's status reads:

- ``done``: ``complete`` in the store;
- ``diverged``: recorded as diverged (a measured outcome, not an error: never rerun);
- ``failed``: recorded as failed; reported, and rerun only with ``--retry-failed``;
- ``running``: another live sweep holds its claim;
- ``pending``: absent, or ``running`` with nobody holding its claim (a killed attempt: the pipeline resumes it
  from its committed milestones).

A claim says "this process is executing run X". On SQLite it is an ``flock`` on a file in ``<db>.claims/``
beside the database; on PostgreSQL a session advisory lock. Both vanish with the process that holds them, even
on SIGKILL, so a dead sweep never leaves a run claimed. The sweep driver holds the claims of the runs it has
in flight (its run processes die with it), which is what lets two sweeps share one database without running
the same run twice.
"""

from __future__ import annotations

import fcntl
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tamperlab.store import Store, open_store, store_target  # noqa: F401  (the sweep's names for them)
from tamperlab.store.postgres import is_postgres_url
from tamperlab.sweep.grid import GridPoint

STATUSES = ("done", "pending", "running", "failed", "diverged")


def store_exists(target: str | Path) -> bool:
    """Whether anything is at ``target`` yet: a non-empty file, or a PostgreSQL database with tables."""
    text = str(target)
    if not is_postgres_url(text):
        return Path(text).is_file() and Path(text).stat().st_size > 0
    from tamperlab.store.postgres import PostgresConnection

    conn = PostgresConnection(text, readonly=True)
    try:
        return bool(conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall())
    finally:
        conn.close()


def check_store(target: str | Path) -> None:
    """Raise StoreError when an existing store is not ours, without writing a byte to it.

    ``Store()`` switches a file to WAL mode before it looks at the tables, which rewrites a foreign SQLite
    file's header; so whatever exists is first opened read-only (an empty file or database becomes a new
    store).
    """
    if store_exists(target):
        open_store(target, readonly=True).close()


class Claims:
    """Claims on runs for one store (see the module docstring)."""

    def __init__(self, store: Store, target: str) -> None:
        self.store = store
        self.postgres = is_postgres_url(target)
        self.dir = None if self.postgres else Path(target).with_name(Path(target).name + ".claims")
        self._held: dict[str, Any] = {}

    def try_claim(self, run_id: str) -> bool:
        """Claim ``run_id`` without waiting; False when another process holds it."""
        if run_id in self._held:
            return True
        if self.postgres:
            if not self.store.conn.try_advisory_lock(run_id):
                return False
            self._held[run_id] = True
            return True
        assert self.dir is not None
        self.dir.mkdir(exist_ok=True)
        fd = os.open(self.dir / f"{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[run_id] = fd
        return True

    def is_claimed_elsewhere(self, run_id: str) -> bool:
        """True when another process holds ``run_id``'s claim (tested by taking and dropping it)."""
        if run_id in self._held:
            return False
        if self.try_claim(run_id):
            self.release(run_id)
            return False
        return True

    def release(self, run_id: str) -> None:
        held = self._held.pop(run_id, None)
        if held is None:
            return
        if self.postgres:
            self.store.conn.advisory_unlock(run_id)
        else:
            fcntl.flock(held, fcntl.LOCK_UN)
            os.close(held)

    def release_all(self) -> None:
        for run_id in list(self._held):
            self.release(run_id)


@dataclass
class PointStatus:
    point: GridPoint
    status: str
    error: str | None = None


def statuses(store: Store, points: list[GridPoint], claims: Claims | None = None) -> list[PointStatus]:
    """Each point's status (see the module docstring); ``claims`` tells interrupted runs from live ones."""
    out = []
    for point in points:
        assert point.run_id is not None, "assign_run_ids first"
        row = store.get_run(point.run_id)
        if row is None:
            out.append(PointStatus(point, "pending"))
            continue
        status = row["status"]
        if status == "complete":
            out.append(PointStatus(point, "done"))
        elif status in ("failed", "diverged"):
            out.append(PointStatus(point, status, row.get("error")))
        elif claims is not None and claims.is_claimed_elsewhere(point.run_id):
            out.append(PointStatus(point, "running"))
        else:
            out.append(PointStatus(point, "pending"))
    return out


def counts(rows: list[PointStatus]) -> dict[str, int]:
    tally = Counter(r.status for r in rows)
    return {s: tally.get(s, 0) for s in STATUSES}


def describe_counts(tally: dict[str, int]) -> str:
    """``3 done · 2 pending · 1 failed`` (zero counts left out, except done and pending)."""
    parts = [f"{tally[s]} {s}" for s in STATUSES if tally.get(s) or s in ("done", "pending")]
    return " · ".join(parts)
