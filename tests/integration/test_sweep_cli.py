"""`tamperlab sweep` as a user meets it: listing, bad input (one line, exit 2, store untouched), failed runs,
the checkpoint disk cap."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import pytest
import typer
import yaml
from sweep_support import free_port, write_grid
from typer.testing import CliRunner

from tamperlab.cli import cli_errors
from tamperlab.store import Store
from tamperlab.sweep.command import sweep_command

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(cli_errors(sweep_command))  # exactly how tamperlab.cli registers it


def sweep(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def fingerprint(db: Path) -> tuple[str, list]:
    """The store's bytes (the main file and any WAL content; the -shm index is scratch space) and its rows."""
    digest = hashlib.sha256(db.read_bytes())
    wal = db.with_name(db.name + "-wal")
    if wal.is_file():
        digest.update(wal.read_bytes())
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = [conn.execute(f"SELECT * FROM {t}").fetchall() for t in ("runs", "milestones", "meta")]
    conn.close()
    return digest.hexdigest(), rows


@pytest.fixture
def existing_store(tmp_path):
    db = tmp_path / "store.sqlite"
    store = Store(db)
    store.start_run("run-earlier", "run", {"x": 1})
    store.finish_run("run-earlier", "complete", wall_seconds=1.0)
    store.close()
    return db


def test_dry_run_lists_every_point_and_writes_nothing(tiny_model_dir, tmp_path):
    grid = write_grid(tmp_path / "g.yaml", tiny_model_dir, axes={"seeds": [[0], [1], [2]]})
    db = tmp_path / "new.sqlite"
    result = sweep(grid, "--store", db, "--dry-run")
    assert result.exit_code == 0, result.output
    assert len(re.findall(r"run-[0-9a-f]{16}", result.output)) == 3
    assert "0 done · 3 pending" in result.output
    assert not db.exists()


BAD_GRIDS = {
    "unknown axis": ({"evl.max_new_tokens": [1]}, "unknown axis 'evl.max_new_tokens'"),
    "empty axis": ({"seeds": []}, "axis 'seeds' is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRIDS))
def test_bad_grid_is_one_line_and_changes_nothing(case, tiny_model_dir, tmp_path, existing_store):
    axes, message = BAD_GRIDS[case]
    grid = write_grid(tmp_path / "g.yaml", tiny_model_dir, axes=axes)
    before = fingerprint(existing_store)
    result = sweep(grid, "--store", existing_store)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert fingerprint(existing_store) == before


def test_malformed_yaml_is_one_line_and_changes_nothing(tmp_path, existing_store):
    grid = tmp_path / "g.yaml"
    grid.write_text("base:\n  model: {name: x\naxes:\n  seeds: [[0]]\n")
    before = fingerprint(existing_store)
    result = sweep(grid, "--store", existing_store)
    assert result.exit_code == 2
    assert "malformed YAML at line" in result.output and len(result.output.strip().splitlines()) == 1
    assert fingerprint(existing_store) == before


def test_missing_grid_file(tmp_path):
    result = sweep(tmp_path / "nope.yaml", "--store", tmp_path / "s.sqlite")
    assert result.exit_code == 2 and "grid file not found" in result.output
    assert not (tmp_path / "s.sqlite").exists()


def test_unreachable_ray_address_is_one_line_and_changes_nothing(tiny_model_dir, tmp_path, existing_store):
    grid = write_grid(tmp_path / "g.yaml", tiny_model_dir)
    before = fingerprint(existing_store)
    address = f"127.0.0.1:{free_port()}"
    result = sweep(grid, "--store", existing_store, "--executor", "ray", "--ray-address", address)
    assert result.exit_code == 2
    assert f"cannot reach the Ray cluster at {address}" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert fingerprint(existing_store) == before


def test_a_database_that_is_not_ours_is_one_line_and_changes_nothing(tiny_model_dir, tmp_path):
    grid = write_grid(tmp_path / "g.yaml", tiny_model_dir)
    db = tmp_path / "customers.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers VALUES (1, 'ada')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    result = sweep(grid, "--store", db)
    assert result.exit_code == 2
    assert "not a tamperlab store" in result.output and len(result.output.strip().splitlines()) == 1
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.sqlite", "g.yaml"]  # no -wal, no claims


def test_checkpoint_cap_keeps_a_run_from_starting(tiny_model_dir, tmp_path):
    grid = write_grid(tmp_path / "g.yaml", tiny_model_dir, axes={"keep_checkpoints": [True]})
    result = sweep(grid, "--store", tmp_path / "s.sqlite", "--max-checkpoint-gb", "0")
    assert result.exit_code == 1
    assert "not started" in result.output and "--max-checkpoint-gb" in result.output
    assert "0 done · 1 pending" in result.output
    assert Store(tmp_path / "s.sqlite").list_runs() == []


def test_failed_runs_are_reported_and_rerun_only_when_asked(tiny_model_dir, tmp_path, isolated_home):
    base = yaml.safe_load(write_grid(tmp_path / "x.yaml", tiny_model_dir).read_text())["base"]
    base["safeguard"] = None
    base["attacks"][0]["args"]["data"] = f"chat-jsonl:{tmp_path / 'missing.jsonl'}"
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({"base": base, "axes": {}}))
    db = tmp_path / "s.sqlite"

    first = sweep(grid, "--store", db)
    assert first.exit_code == 1
    assert "1 failed" in first.output and "--retry-failed" in first.output
    (run,) = Store(db).list_runs()
    assert run["status"] == "failed" and "missing.jsonl" in run["error"]
    log = isolated_home / "sweeps" / "logs" / f"{run['run_id']}.log"

    again = sweep(grid, "--store", db)
    assert again.exit_code == 1 and "0 done · 0 pending · 1 failed" in again.output
    assert log.read_text().count(f"=== {run['run_id']}") == 1  # reported, not rerun

    retried = sweep(grid, "--store", db, "--retry-failed")
    assert retried.exit_code == 1
    assert log.read_text().count(f"=== {run['run_id']}") == 2
