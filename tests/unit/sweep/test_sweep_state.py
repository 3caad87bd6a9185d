"""Statuses from the runs table, claims, crash points, and the shipped example grids."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tamperlab.config import validate
from tamperlab.store import Store
from tamperlab.sweep import faults
from tamperlab.sweep.grid import GridPoint, RunSpec, expand, load_grid
from tamperlab.sweep.state import Claims, counts, describe_counts, statuses

SWEEPS = Path(__file__).resolve().parents[3] / "configs" / "sweeps"


def point(run_id: str) -> GridPoint:
    spec = validate(RunSpec, {"model": {"name": "m"}})
    return GridPoint(index=0, label="", overrides={}, spec=spec, spec_key="k", run_id=run_id)


def test_status_of_each_run_comes_from_the_store_and_its_claims(tmp_path):
    target = str(tmp_path / "s.sqlite")
    store = Store(target)
    for run_id, status in [("r-done", "complete"), ("r-failed", "failed"), ("r-div", "diverged")]:
        store.start_run(run_id, "run", {})
        store.finish_run(run_id, status, error="why" if status != "complete" else None)
    store.start_run("r-killed", "run", {})  # running, nobody holds it: a killed attempt
    store.start_run("r-live", "run", {})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from tamperlab.sweep.state import Claims, open_store
        claims = Claims(open_store({target!r}), {target!r})
        assert claims.try_claim("r-live")
        print("held", flush=True)
        time.sleep(600)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        points = [point(r) for r in ("r-done", "r-failed", "r-div", "r-killed", "r-live", "r-new")]
        rows = statuses(store, points, Claims(store, target))
        assert [r.status for r in rows] == ["done", "failed", "diverged", "pending", "running", "pending"]
        assert rows[1].error == "why"
        assert counts(rows) == {"done": 1, "pending": 2, "running": 1, "failed": 1, "diverged": 1}
        assert describe_counts(counts(rows)) == "1 done · 2 pending · 1 running · 1 failed · 1 diverged"
    finally:
        holder.kill()


def test_crash_points_are_inert_unless_armed_and_reject_unknown_names(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.reached("sweep-start")  # nothing happens
    monkeypatch.setenv(faults.ENV, "sweep-strat")
    with pytest.raises(ValueError, match="unknown crash point 'sweep-strat'"):
        faults.reached("sweep-start")


def test_a_crash_point_kills_the_process_group_at_its_occurrence():
    code = (
        "from tamperlab.sweep import faults\nfor i in range(5):\n    print(i)\n    faults.reached('run-end')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, faults.ENV: "run-end@3"},
        capture_output=True,
        text=True,
        start_new_session=True,
    )
    assert done.returncode == -9 and done.stdout.split() == ["0", "1", "2"]


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_example_grids_expand_and_validate(path):
    points = expand(load_grid(path))
    assert points and len({p.spec_key for p in points}) == len(points)
