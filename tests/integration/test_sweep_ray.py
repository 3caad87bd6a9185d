"""The Ray executor: same results as the local one, bounded retries, the driver killed mid-merge.

Marked ``ray`` (not in the default run: a local Ray takes ~15 s to start): ``pytest -m ray``.
"""

from __future__ import annotations

import signal

import pytest
from sweep_support import (
    assert_same_results,
    assert_trained,
    finish,
    results_table,
    start_sweep,
    write_grid,
)

from tamperlab.store import Store

pytestmark = pytest.mark.ray
RAY = ("--executor", "ray", "--workers", "2", "--num-cpus", "1")


@pytest.fixture(scope="module")
def local_baseline(tiny_model_dir, tmp_path_factory):
    pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("ray_baseline")
    grid = write_grid(root / "grid.yaml", tiny_model_dir)
    code, out = finish(start_sweep(grid, root / "local.sqlite", root / "home"))
    assert code == 0, out
    table = results_table(Store(root / "local.sqlite", readonly=True))
    assert_trained(table)
    return grid, table


def test_ray_gives_the_local_executors_results_and_retries_a_crashed_task(
    local_baseline, tmp_path, monkeypatch
):
    grid, expected = local_baseline
    crashes = tmp_path / "crashed"
    crashes.mkdir()
    monkeypatch.setenv("TAMPERLAB_SWEEP_CRASH_ONCE", str(crashes))  # every run's first attempt raises
    code, out = finish(start_sweep(grid, tmp_path / "ray.sqlite", tmp_path / "home", None, *RAY))
    assert code == 0, out
    assert len(list(crashes.iterdir())) == 2  # both runs crashed once and were retried
    assert_same_results(results_table(Store(tmp_path / "ray.sqlite", readonly=True)), expected)


def test_retries_are_bounded_and_the_run_is_recorded_failed(local_baseline, tmp_path, monkeypatch):
    grid, _ = local_baseline
    crashes = tmp_path / "crashed"
    crashes.mkdir()
    monkeypatch.setenv("TAMPERLAB_SWEEP_CRASH_ONCE", str(crashes))
    code, out = finish(
        start_sweep(grid, tmp_path / "s.sqlite", tmp_path / "home", None, *RAY, "--max-retries", "0")
    )
    assert code == 1, out
    runs = Store(tmp_path / "s.sqlite", readonly=True).list_runs()
    assert [r["status"] for r in runs] == ["failed", "failed"]
    assert all("injected crash" in r["error"] and "after 0 retries" in r["error"] for r in runs)


def test_driver_killed_mid_merge_resumes_to_the_same_table(local_baseline, tmp_path):
    grid, expected = local_baseline
    db, home = tmp_path / "s.sqlite", tmp_path / "home"
    code, out = finish(start_sweep(grid, db, home, "merge@1", *RAY))
    assert code == -signal.SIGKILL, out
    code, out = finish(start_sweep(grid, db, home, None, *RAY))
    assert code == 0, out
    assert_same_results(results_table(Store(db, readonly=True)), expected)
