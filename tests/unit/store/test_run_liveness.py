"""A run recorded as running that nobody runs any more (its process died on this host, or its heartbeat went
stale elsewhere) reads as interrupted in ``tamperlab ls``, not running until it is rerun."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from tamperlab.cli import app
from tamperlab.store import Store


def _set_beat(store: Store, run_id: str, *, host: str, pid: int, at: str) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO heartbeats VALUES (?, ?, ?, ?)", (run_id, host, pid, at))


def _beat_of(store: Store, run_id: str) -> dict:
    return dict(store.conn.execute("SELECT * FROM heartbeats WHERE run_id = ?", (run_id,)).fetchone())


def _state(store: Store, run_id: str) -> str:
    return store.get_run(run_id)["state"]


def test_a_run_whose_process_died_reads_as_interrupted(tmp_path):
    db = tmp_path / "s.sqlite"
    Store(db).close()
    code = (
        "import os, sys; from tamperlab.store import Store;"
        f" s = Store({str(db)!r}); s.start_run('run-killed', 'run', {{}}); os._exit(9)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 9
    store = Store(db)
    assert store.get_run("run-killed")["status"] == "running"  # what the store says
    assert _state(store, "run-killed") == "interrupted"  # what ls shows
    store.start_run("run-alive", "run", {})  # this process: alive
    assert _state(store, "run-alive") == "running"
    store.start_run("run-old", "run", {})
    store.conn.execute("DELETE FROM heartbeats WHERE run_id = 'run-old'")  # a run from before heartbeats
    assert _state(store, "run-old") == "running"
    store.finish_run("run-alive", "complete")
    assert _state(store, "run-alive") == "complete"
    table = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["ls", "--store", str(db)])
    assert table.exit_code == 0 and "interrupted" in table.output


def test_another_hosts_run_is_interrupted_when_its_heartbeat_is_stale(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.start_run("run-remote", "run", {})
    fresh = datetime.now(UTC).replace(microsecond=0)
    _set_beat(store, "run-remote", host="elsewhere", pid=1, at=fresh.isoformat())
    assert _state(store, "run-remote") == "running"
    _set_beat(store, "run-remote", host="elsewhere", pid=1, at=(fresh - timedelta(hours=1)).isoformat())
    assert _state(store, "run-remote") == "interrupted"


def test_beating_keeps_the_heartbeat_fresh(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.start_run("run-long", "run", {})
    old = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    _set_beat(store, "run-long", host="elsewhere", pid=1, at=old)
    assert _state(store, "run-long") == "interrupted"
    with store.beating("run-long", every=0.05):
        deadline = time.monotonic() + 10
        while _beat_of(store, "run-long")["beat_at"] == old and time.monotonic() < deadline:
            time.sleep(0.05)
    beat = _beat_of(store, "run-long")
    assert beat["beat_at"] != old and beat["pid"] == os.getpid()
    assert store.summaries("run-long") == {}  # heartbeats are not summaries
    assert _state(store, "run-long") == "running"


def test_a_store_from_before_heartbeats_gets_the_table_when_opened_for_writing(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE heartbeats")
    conn.execute(
        "INSERT INTO runs (run_id, kind, spec_json, status, created_at)"
        " VALUES ('r', 'run', '{}', 'running', 'x')"
    )
    conn.commit()
    conn.close()
    assert Store(path, readonly=True).get_run("r")["state"] == "running"  # no table, no verdict
    store = Store(path)
    store.start_run("r2", "run", {})
    assert store.get_run("r2")["state"] == "running" and _beat_of(store, "r2")["pid"] == os.getpid()
