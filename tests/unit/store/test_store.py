"""The store: deterministic reuse, all-or-nothing writes, refusing foreign databases, lineage."""

import sqlite3
import sys

import pytest

from tamperlab.errors import StoreError
from tamperlab.store import Store


def _eval(store, eval_id="e1", **kw):
    store.save_evaluation(
        eval_id,
        run_id="r1",
        model_id="m1",
        spec={"x": 1},
        generations=[
            {"prompt_set": "harmful", "prompt_id": "p1", "category": "c", "prompt": "q", "completion": "a"}
        ],
        verdicts=[
            {"prompt_set": "harmful", "prompt_id": "p1", "judge": "keyword", "refused": False, "score": 0.1}
        ],
        metrics=[{"name": "harmful_compliance_rate", "value": 1.0, "ci_low": 0.2, "ci_high": 1.0, "n": 1}],
        **kw,
    )


def test_evaluation_round_trip_and_rewrite_replaces_rows(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    _eval(store)
    _eval(store)  # same id again: replaced, not duplicated
    assert store.evaluation_status("e1") == "complete"
    assert store.metrics("e1")["harmful_compliance_rate"]["n"] == 1
    gens = store.generations("e1")
    assert len(gens) == 1 and gens[0]["verdicts"] == {"keyword": {"refused": False, "score": 0.1}}


def test_failed_write_leaves_nothing_marked_complete(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    bad_metrics = [
        {"name": "m", "value": 1.0},
        {"name": "m", "value": 2.0},
    ]  # duplicate key -> IntegrityError
    with pytest.raises(sqlite3.IntegrityError):
        store.save_evaluation(
            "e2", run_id="r", model_id="m", spec={}, generations=[], verdicts=[], metrics=bad_metrics
        )
    assert store.evaluation_status("e2") is None
    assert store.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 0


def test_milestone_is_written_with_its_model_and_evaluation(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.add_model("base", "base")
    store.add_model("safe", "safeguarded", parent_id="base", run_id="r1")
    ev = dict(
        eval_id="r1/a/0/4",
        run_id="r1",
        model_id="m4",
        spec={},
        generations=[],
        verdicts=[],
        metrics=[{"name": "harmful_compliance_rate", "value": 0.4, "ci_low": 0.2, "ci_high": 0.6, "n": 20}],
    )
    budget = {"steps": 4, "examples": 32, "tokens": 3000, "flops": 1e12, "seconds": 9.0}
    store.save_milestone(
        "r1",
        "a",
        0,
        4,
        budget,
        train_loss=1.5,
        model={"model_id": "m4", "label": "a@4", "parent_id": "safe", "run_id": "r1"},
        evaluation=ev,
    )
    assert store.completed_steps("r1", "a", 0) == {4}
    row = store.milestones("r1")[0]
    assert row["harmful_compliance_rate"] == 0.4 and row["harmful_compliance_rate_n"] == 20
    assert [m["model_id"] for m in store.lineage("r1")] == ["base", "safe", "m4"]


def test_refuses_a_database_that_is_not_ours(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a tamperlab store"):
        Store(path)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a tamperlab store"):
        Store(garbage)
    with pytest.raises(StoreError, match="no tamperlab store"):
        Store(tmp_path / "missing.sqlite", readonly=True)


def test_run_status_lifecycle(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    assert store.start_run("r1", "eval", {"a": 1}) is None
    store.finish_run("r1", "failed", error="boom")
    assert store.start_run("r1", "eval", {"a": 1}) == "failed"
    store.finish_run("r1", "complete", wall_seconds=3.0)
    assert store.start_run("r1", "eval", {"a": 1}) == "complete"
    assert store.find_run("r")["status"] == "complete"


def test_store_never_imports_torch():
    import subprocess

    code = "import sys, tamperlab.store; print('torch' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_capability_items_round_trip_with_their_evaluation(tmp_path):
    from tamperlab.evals.accuracy import ItemScore

    store = Store(tmp_path / "s.sqlite")
    item = ItemScore(
        task="mmlu@5shot",
        item_id="anatomy/3",
        subject="anatomy",
        gold=(2,),
        chosen=1,
        chosen_norm=None,
        correct=False,
        correct_norm=None,
        logliks=(-1.5, -0.25, -3.0, -2.0),
        greedy=(False, True, False, False),
    )
    _eval(store, capability_items=[item])
    _eval(store, capability_items=[item])  # rewritten, not duplicated
    [row] = store.capability_items("e1")
    assert row["task"] == "mmlu@5shot" and row["subject"] == "anatomy"
    assert row["gold"] == [2] and row["chosen"] == 1 and row["correct"] is False
    assert row["logliks"] == [-1.5, -0.25, -3.0, -2.0] and row["greedy"] == [False, True, False, False]
    assert store.capability_items("e1", task="hellaswag") == []


def test_a_schema_1_store_is_read_as_is_and_migrated_when_written(tmp_path):
    path = tmp_path / "old.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)  # make it a schema-1 store: no capability_items, NOT NULL bound
    conn.executescript(
        "DROP TABLE capability_items; DROP TABLE break_costs;"
        "CREATE TABLE break_costs (run_id TEXT NOT NULL, arm TEXT NOT NULL, seed INTEGER NOT NULL,"
        " threshold REAL NOT NULL, capability_bound REAL NOT NULL, broken INTEGER NOT NULL, steps REAL,"
        " examples REAL, tokens REAL, flops REAL, seconds REAL, detail_json TEXT,"
        " PRIMARY KEY (run_id, arm, seed));"
        "INSERT INTO break_costs VALUES ('r', 'a', 0, 0.5, 0.1, 1, 2, 16, 1600, 1e12, 4, NULL);"
        "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    conn.commit()
    conn.close()
    old = Store(path, readonly=True)
    assert old.capability_items("anything") == []
    assert old.break_costs("r")[0]["steps"] == 2
    old.close()
    store = Store(path)  # writable: migrated, rows kept
    assert store.break_costs("r")[0]["capability_bound"] == 0.1
    store.save_break_cost("r", "b", 0, {"threshold": 0.5, "capability_bound": None, "broken": False})
    assert store.break_costs("r")[1]["capability_bound"] is None
    version = store.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == "2"
