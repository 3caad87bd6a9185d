"""Sweeps survive SIGKILL and share a database: the results table always equals an uninterrupted sweep's.

The tiny model with tiny limits (keyword judge, two or fewer prompts per set, milestones [0, 1, 2]) keeps each
run to seconds. Sweeps run as real processes (``python -m tamperlab.sweep``) in their own process group and
are killed with SIGKILL, children included, at injected points (``TAMPERLAB_SWEEP_KILL``, mid-write included)
and at random moments.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time

import pytest
from sweep_support import (
    assert_same_results,
    assert_trained,
    finish,
    new_database,
    postgres_or_skip,
    results_table,
    start_sweep,
    write_grid,
)

from tamperlab.store import Store
from tamperlab.sweep.state import open_store


@pytest.fixture(scope="module")
def baseline(tiny_model_dir, tmp_path_factory):
    """The grid (two runs) and the results of one uninterrupted sweep of it."""
    root = tmp_path_factory.mktemp("baseline")
    grid = write_grid(root / "grid.yaml", tiny_model_dir)
    code, out = finish(start_sweep(grid, root / "clean.sqlite", root / "home"))
    assert code == 0, out
    store = Store(root / "clean.sqlite", readonly=True)
    table = results_table(store)
    assert [r[2] for r in table["runs"]] == ["complete", "complete"]
    assert len(table["milestones"]) == 6  # 2 runs x 1 arm x milestones [0, 1, 2]
    assert_trained(table)
    return grid, table


def _check_consistent(path):
    """After any kill: the file is intact, and every evaluation marked complete has its rows."""
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    orphans = conn.execute(
        "SELECT COUNT(*) FROM evaluations e WHERE status = 'complete'"
        " AND NOT EXISTS (SELECT 1 FROM metrics m WHERE m.eval_id = e.eval_id)"
    ).fetchone()[0]
    assert orphans == 0
    dangling = conn.execute(
        "SELECT COUNT(*) FROM milestones m"
        " WHERE NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.eval_id = m.eval_id)"
    ).fetchone()[0]
    assert dangling == 0
    conn.close()


# Transactions of a fresh run, in order: start_run 1, base model 2, base evaluation 3, safeguarded model 4,
# its evaluation 5, arm 6, milestones 7-9, break costs 10-11, summary 12, finish 13.
INJECTED = [
    "sweep-start",  # expanded, store open, nothing run
    "store-commit@8",  # run 1: inside the milestone-1 transaction, before COMMIT
    "store-committed@2",  # run 1 resumed: right after its second commit
    "run-end@1",  # run 1 finished; the driver dies before its bookkeeping
    "run-start@1",  # run 2 claimed, its process not yet started
    "store-commit@9",  # run 2: inside the milestone-2 transaction
]


def test_killed_at_any_moment_the_sweep_resumes_to_the_uninterrupted_table(baseline, tmp_path):
    grid, expected = baseline
    db, home = tmp_path / "killed.sqlite", tmp_path / "home"
    rng = random.Random(20240611)
    for kill in INJECTED:
        code, out = finish(start_sweep(grid, db, home, kill))
        assert code == -signal.SIGKILL, f"{kill} was not reached:\n{out}"
        if db.exists():
            _check_consistent(db)
    for _ in range(2):  # and at random moments
        proc = start_sweep(grid, db, home)
        time.sleep(rng.uniform(1.0, 8.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        finish(proc)
        _check_consistent(db)
    # Ctrl-C (SIGINT to the whole group, as a terminal sends it) leaves the run in progress to be resumed, not
    # recorded as failed (a plain rerun would not retry it then).
    proc = start_sweep(grid, db, home)
    time.sleep(rng.uniform(4.0, 8.0))
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    code, out = finish(proc)
    assert code in (0, 130), out
    assert "failed" not in {r[2] for r in results_table(Store(db, readonly=True))["runs"]}
    code, out = finish(start_sweep(grid, db, home))
    assert code == 0, out
    assert_same_results(results_table(Store(db, readonly=True)), expected)
    models = home / "models"
    assert not [d.name for d in models.iterdir() if ".tmp-" in d.name]  # half-written models were cleaned up


@pytest.fixture(scope="module")
def postgres_admin_url():
    server, url = postgres_or_skip()
    yield url
    server.__exit__(None, None, None)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_sweeps_on_one_database_at_once(backend, baseline, tmp_path, request):
    grid, expected = baseline
    home = tmp_path / "home"
    if backend == "sqlite":
        db = str(tmp_path / "shared.sqlite")
    else:
        db = new_database(request.getfixturevalue("postgres_admin_url"), "two_sweeps")
    first = start_sweep(grid, db, home)
    time.sleep(0.5)
    second = start_sweep(grid, db, home)
    (code1, out1), (code2, out2) = finish(first), finish(second)
    assert (code1, code2) == (0, 0), out1 + out2
    assert_same_results(results_table(open_store(db, readonly=True)), expected)
    # each run was executed once: one attempt header per run log
    for run_id, *_ in expected["runs"]:
        log = (home / "sweeps" / "logs" / f"{run_id}.log").read_text()
        assert log.count(f"=== {run_id}") == 1
