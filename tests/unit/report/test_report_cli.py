"""The run commands' output on the fixture store: whole tables in a log, --json with the tables' figures."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tamperlab.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)


def test_piped_break_cost_table_is_never_cut(report_store, tmp_path):
    """CliRunner's stdout is not a terminal, like a pipe or a log file: no cell may end in an ellipsis."""
    store, run_id = report_store
    result = runner.invoke(
        app, ["report", run_id, "--store", str(store.path), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output
    table = result.stdout[: result.stdout.index("┘") + 1]  # the break-cost table ends at its first corner
    assert "…" not in table
    for whole in ("defended / undefended", "not broken within budget", "≥ 10.2× FLOPs", "2.3–3.7"):
        assert whole in table
    rows = [line for line in table.splitlines() if line.startswith("│ undefended/harmful-sft-full#1")]
    assert rows and "3.1" in rows[0] and "broken" in rows[0]


def test_columns_still_narrows_piped_output(report_store, tmp_path, monkeypatch):
    store, run_id = report_store
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(
        app, ["report", run_id, "--store", str(store.path), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output
    table = result.stdout[: result.stdout.index("┘") + 1]  # the break-cost table ends at its first corner
    table = table.split("\n", 1)[1]  # after the one-line finding (soft-wrapped: the terminal wraps it)
    assert "…" in table and max(len(line) for line in table.splitlines()) <= 80


def test_report_json_has_the_tables_figures(report_store, report_fixture, tmp_path):
    store, run_id = report_store
    args = ["report", run_id, "--store", str(store.path), "--out", str(tmp_path / "r.html")]
    human = runner.invoke(app, args)
    assert human.exit_code == 0, human.output
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["run_id"] == run_id and run["status"] == "complete" and run["report"].endswith("r.html")
    arms = {c["arm"]: c for c in run["break_costs"]}
    assert set(arms) == set(report_fixture.ARMS)
    full = arms["undefended/harmful-sft-full#1"]
    assert full["broken"] is True and full["broken_seeds"] == 3 and full["n_seeds"] == 3
    assert full["costs"]["steps"]["text"] == "3.1" and full["spread"]["steps"] == "2.3–3.7"
    assert full["costs"]["steps"]["value"] == pytest.approx(3.1, abs=0.05)
    for cost in run["break_costs"]:  # every figure JSON gives is one the table prints
        assert cost["arm"] in human.stdout
        for unit, figure in cost["costs"].items():
            assert figure["text"] in human.stdout, (cost["arm"], unit)
        for ratio in cost["ratios"].values():  # an incoherent defense's ratio is flagged, not printed
            assert cost["incoherent"] or ratio["text"] in human.stdout
    assert any(c["incoherent"] for c in run["break_costs"])
    assert any(r["text"] == "≥ 10.2×" for c in run["break_costs"] for r in c["ratios"].values())


def test_ls_and_show_json_list_what_the_tables_list(report_store):
    store, run_id = report_store
    listed = runner.invoke(app, ["ls", "--store", str(store.path), "--json"])
    assert listed.exit_code == 0, listed.output
    runs = json.loads(listed.stdout)
    human = runner.invoke(app, ["ls", "--store", str(store.path)])
    assert {r["run_id"] for r in runs} >= {run_id}
    for r in runs:
        assert r["run_id"] in human.stdout and r["status"] in human.stdout
    eval_id = next(
        row["eval_id"]
        for row in store.milestones(run_id)
        if row.get("eval_id") and store.generations(row["eval_id"])
    )
    shown = runner.invoke(app, ["show", eval_id, "--store", str(store.path), "--limit", "3", "--json"])
    assert shown.exit_code == 0, shown.output
    generations = json.loads(shown.stdout)
    stored = store.generations(eval_id)[:3]
    assert len(generations) == len(stored) == 3
    for got, row in zip(generations, stored, strict=True):
        assert got["prompt"] == row["prompt"] and got["completion"] == row["completion"]
        assert got["verdicts"] == {j: v["refused"] for j, v in row["verdicts"].items()}
