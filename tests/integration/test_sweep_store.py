"""The store under sweeps: same behaviour on SQLite and PostgreSQL, concurrent writers lose nothing, claims.

PostgreSQL cases start a real server (Debian's ``postgresql`` package) in a temporary directory on 127.0.0.1
and skip, saying why, only where it cannot start.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sweep_support import milestone, new_database, postgres_or_skip

from tamperlab.errors import StoreError
from tamperlab.sweep.records import export_run, import_run
from tamperlab.sweep.state import Claims, check_store, open_store


@pytest.fixture(scope="module")
def postgres_admin_url():
    """A throwaway PostgreSQL server for this module (skips, saying why, where it cannot start)."""
    server, url = postgres_or_skip()
    yield url
    server.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request, tmp_path):
    """A fresh, empty store location: an SQLite path, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return new_database(request.getfixturevalue("postgres_admin_url"), "store")


def _eval(store, eval_id="e1", run_id="r1", **kw):
    store.save_evaluation(
        eval_id,
        run_id=run_id,
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


def test_evaluation_round_trip_and_rewrite_replaces_rows(target):
    store = open_store(target)
    _eval(store)
    _eval(store)
    assert store.evaluation_status("e1") == "complete"
    assert store.metrics("e1")["harmful_compliance_rate"] == {
        "value": 1.0,
        "ci_low": 0.2,
        "ci_high": 1.0,
        "n": 1,
    }
    gens = store.generations("e1")
    assert len(gens) == 1 and gens[0]["verdicts"] == {"keyword": {"refused": False, "score": 0.1}}
    store.save_evaluation(
        "e4",
        run_id="r",
        model_id="m",
        spec={},
        generations=[],
        verdicts=[],
        metrics=[{"name": "benign_nll", "value": 1 / 3, "n": 2**40}],
    )
    # double precision, not PostgreSQL's 4-byte REAL
    assert store.metrics("e4")["benign_nll"]["value"] == 1 / 3
    assert store.metrics("e4")["benign_nll"]["n"] == 2**40


def test_failed_write_leaves_nothing_marked_complete(target):
    store = open_store(target)
    bad = [{"name": "m", "value": 1.0}, {"name": "m", "value": 2.0}]  # duplicate key
    with pytest.raises(sqlite3.IntegrityError):
        store.save_evaluation(
            "e2", run_id="r", model_id="m", spec={}, generations=[], verdicts=[], metrics=bad
        )
    assert store.evaluation_status("e2") is None
    assert store.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 0
    _eval(store, "e3")  # and the connection is usable afterwards
    assert store.evaluation_status("e3") == "complete"


def test_milestones_lineage_and_large_values(target):
    store = open_store(target)
    store.add_model("base", "base")
    milestone(store, "r1", "a", 4)
    assert store.completed_steps("r1", "a", 0) == {4}
    (row,) = store.milestones("r1")
    assert row["flops"] == 4e12 and row["harmful_compliance_rate"] == pytest.approx(0.4, abs=0)
    assert [m["model_id"] for m in store.lineage("r1")] == ["base", "r1/a@4"]


def test_run_status_lifecycle(target):
    store = open_store(target)
    assert store.start_run("r1", "run", {"a": 1}) is None
    store.finish_run("r1", "failed", error="boom")
    assert store.start_run("r1", "run", {"a": 1}) == "failed"
    store.finish_run("r1", "complete", wall_seconds=3.0)
    assert store.start_run("r1", "run", {"a": 1}) == "complete"
    assert store.find_run("r")["wall_seconds"] == 3.0
    with pytest.raises(StoreError, match="no run"):
        store.find_run("zzz")


def test_refuses_a_database_that_is_not_ours_and_leaves_it_alone(target, tmp_path):
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id INTEGER)")
        with pytest.raises(StoreError, match="not a tamperlab store"):
            check_store(target)
        with pytest.raises(StoreError, match="not a tamperlab store"):
            open_store(target)
        with psycopg.connect(target) as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                )
            }
        assert tables == {"customers"}
        return
    path = Path(target)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a tamperlab store"):
        check_store(target)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["store.sqlite"]


def test_postgres_url_that_does_not_answer_is_one_clear_error():
    pytest.importorskip("psycopg")
    from sweep_support import free_port

    with pytest.raises(
        StoreError, match="cannot connect to PostgreSQL at postgresql://u:\\*\\*\\*@127.0.0.1"
    ):
        open_store(f"postgresql://u:secret@127.0.0.1:{free_port()}/db")


def test_records_move_a_run_between_stores(target, tmp_path):
    source = open_store(tmp_path / "worker.sqlite")
    source.add_model("base", "base")
    source.start_run("r1", "run", {"spec": 1})
    source.add_arm("r1", "a", attack={"name": "x"}, defense=None, parent_model_id="base", data=None)
    for step in (0, 1, 2):
        milestone(source, "r1", "a", step)
    source.save_break_cost(
        "r1", "a", 0, {"threshold": 0.5, "capability_bound": 1.1, "broken": True, "steps": 2}
    )
    source.put_summary("r1", "headline", {"k": 1})
    source.finish_run("r1", "complete", wall_seconds=1.0)
    records = export_run(source, "r1")
    assert any(m["model_id"] == "base" for m in records["models"])  # the parent comes along

    dest = open_store(target)
    import_run(dest, records)
    import_run(dest, records)  # idempotent
    assert dest.get_run("r1")["status"] == "complete"
    assert dest.milestones("r1") == source.milestones("r1")
    assert dest.break_costs("r1") == source.break_costs("r1")
    assert [m["model_id"] for m in dest.lineage("r1")] == [m["model_id"] for m in source.lineage("r1")]
    assert export_run(dest, "r1") == records


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {here!r})
    from sweep_support import milestone
    from tamperlab.sweep.state import open_store
    store = open_store({target!r})
    worker = int(sys.argv[1])
    first = store.start_run("shared", "run", {{"w": worker}})
    print("new" if first is None else "seen", flush=True)
    store.add_model("base", "base")
    for step in range({steps}):
        milestone(store, f"run-{{worker}}", "arm", step)
        store.put_summary(f"run-{{worker}}", f"k{{step}}", step)
""")


def test_concurrent_writers_lose_nothing(target):
    """Six processes write 25 milestones each (each with a model and an evaluation) to one store at once."""
    open_store(target).close()  # create the schema once, as the first sweep would
    workers, steps = 6, 25
    code = WRITER.format(here=str(Path(__file__).parent), target=target, steps=steps)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(w)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for w in range(workers)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["new"] + ["seen"] * (workers - 1)  # one creator of "shared"
    store = open_store(target)
    count = lambda table: store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: E731
    assert count("milestones") == workers * steps
    assert count("evaluations") == workers * steps
    assert count("generations") == workers * steps
    assert count("metrics") == workers * steps
    assert count("models") == workers * steps + 1
    assert count("summaries") == workers * steps
    for w in range(workers):
        assert store.completed_steps(f"run-{w}", "arm", 0) == set(range(steps))


HOLDER = textwrap.dedent("""
    import sys, time
    from tamperlab.sweep.state import Claims, open_store
    store = open_store({target!r})
    claims = Claims(store, {target!r})
    assert claims.try_claim("run-x")
    print("held", flush=True)
    time.sleep(600)
""")


def test_a_claim_is_exclusive_and_dies_with_its_holder(target):
    store = open_store(target)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(target=target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        claims = Claims(store, target)
        assert not claims.try_claim("run-x") and claims.is_claimed_elsewhere("run-x")
        assert claims.try_claim("run-y")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not claims.try_claim("run-x"):  # PostgreSQL notices the dropped connection within moments
            assert time.monotonic() < deadline, "the claim outlived its holder"
            time.sleep(0.2)
        claims.release_all()
    finally:
        holder.kill()
