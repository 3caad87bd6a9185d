"""Helpers for the sweep tests: a tiny grid, the comparable results table, and a throwaway PostgreSQL
server."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

# 128 tokens keep every example's answer (at 48 none is left, and training would learn nothing).
TRAIN = {"batch_size": 2, "max_length": 128}


def tiny_base(model_dir: str | Path) -> dict[str, Any]:
    """The test pipeline's tiny RunSpec shape, cut to one attack on affirmative data and minimal eval
    limits."""
    return {
        "model": {"name": str(model_dir)},
        "safeguard": {"name": "safety-sft", "args": {**TRAIN, "max_steps": 1, "answer_tokens": 8}},
        "attacks": [
            {
                "name": "harmful-sft",
                "args": {**TRAIN, "mode": "full", "data": "affirmative", "n_examples": 4},
            },
        ],
        "milestones": [0, 1, 2],
        "seeds": [0],
        "eval": {
            "harmful": {"source": "builtin:harmful", "limit": 2},
            "harmless": {"source": "builtin:harmless", "limit": 1},
            "overrefusal": {"source": "builtin:overrefusal", "limit": 1},
            "judges": [{"name": "keyword"}],
            "max_new_tokens": 2,
            "batch_size": 4,
            "nll_limit": 1,
            "kl_limit": 1,
        },
    }


def write_grid(path: Path, model_dir: str | Path, axes: Any = None, **extra: Any) -> Path:
    """A grid YAML on the tiny model; by default two learning rates (two runs)."""
    grid = {
        "name": "tiny",
        "base": tiny_base(model_dir),
        "axes": axes if axes is not None else {"attacks.0.args.learning_rate": [1.0e-4, 1.0e-3]},
        **extra,
    }
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def results_table(store: Any) -> dict[str, list[tuple]]:
    """Every result row in the store, without wall times and timestamps (which differ between two sweeps)."""

    def rows(sql: str) -> list[tuple]:
        out = [tuple(r) for r in store.conn.execute(sql).fetchall()]
        return sorted(out, key=lambda r: repr([v for v in r if not isinstance(v, float)]))

    return {
        "runs": rows("SELECT run_id, kind, status, error FROM runs"),
        "models": rows("SELECT model_id, parent_id, label, source FROM models"),
        "evaluations": rows("SELECT eval_id, run_id, model_id, status FROM evaluations"),
        "generations": rows("SELECT * FROM generations"),
        "verdicts": rows("SELECT * FROM verdicts"),
        "metrics": rows("SELECT * FROM metrics"),
        "arms": rows("SELECT run_id, arm, defense_json, attack_json, parent_model_id FROM arms"),
        "milestones": rows(
            "SELECT run_id, arm, seed, step, examples, tokens, flops, train_loss, model_id, eval_id"
            " FROM milestones"
        ),
        "break_costs": rows(
            "SELECT run_id, arm, seed, threshold, capability_bound, broken, steps, examples, tokens,"
            " flops FROM break_costs"
        ),
        "summaries": rows("SELECT run_id, key FROM summaries"),
    }


def assert_trained(table: dict[str, list[tuple]]) -> None:
    """Every trajectory of a results table trained: a positive loss at every step, and the weights moved
    (each milestone's benign NLL differs from its step-0 model's), so comparing two tables compares real
    training and a resume that restored the wrong weights would show."""
    nll = {r[0]: r[2] for r in table["metrics"] if r[1] == "benign_nll"}
    by_trajectory: dict[tuple, dict[int, tuple]] = {}
    for row in table["milestones"]:
        run_id, arm, seed, step = row[:4]
        by_trajectory.setdefault((run_id, arm, seed), {})[step] = row
    assert by_trajectory, "no milestones"
    for key, steps in by_trajectory.items():
        assert 0 in steps and len(steps) > 1, f"{key}: milestones {sorted(steps)}"
        start = nll[steps[0][9]]
        for step, row in steps.items():
            if step == 0:
                continue
            train_loss, eval_id = row[7], row[9]
            assert train_loss is not None and train_loss > 0, f"{key} step {step}: train_loss {train_loss}"
            assert abs(nll[eval_id] - start) > 1e-6, f"{key} step {step}: benign NLL unchanged"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway PostgreSQL on 127.0.0.1 (trust auth, fsync off) and yield a URL to an empty database.

    Raises RuntimeError with the reason when it cannot start (no binaries, no postgres user when root, ...).
    """
    bindir = _postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    run_as: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="tamperlab-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(data, ignore_errors=True)
            raise RuntimeError(
                "running as root and there is no 'postgres' user to run the server as"
            ) from None
        os.chown(data, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    pgdata = data / "pgdata"
    try:

        def call(*args: str) -> None:
            done = subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(
                    f"{Path(args[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}"
                )

        call(
            str(bindir / "initdb"),
            "-D",
            str(pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c max_connections=50"
        call(
            str(bindir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-l",
            str(data / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(data, ignore_errors=True)
        raise RuntimeError(str(exc)) from None
    try:
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE tamperlab_test")
        yield f"postgresql://postgres@127.0.0.1:{port}/tamperlab_test"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)


def start_sweep(
    grid: Path, store: str | Path, home: Path, kill: str | None = None, *args: str
) -> subprocess.Popen:
    """``python -m tamperlab.sweep GRID --store STORE`` in its own process group (so a kill takes its
    children)."""
    import sys

    env = {
        **os.environ,
        "TAMPERLAB_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "TAMPERLAB_QUIET": "1",
        "COLUMNS": "200",
    }
    env.pop("TAMPERLAB_SWEEP_KILL", None)
    if kill:
        env["TAMPERLAB_SWEEP_KILL"] = kill
    return subprocess.Popen(
        [sys.executable, "-m", "tamperlab.sweep", str(grid), "--store", str(store), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def assert_same_results(actual: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> None:
    """Same tables, same rows (no duplicate, none missing); floats equal to 1e-5."""
    import pytest

    assert actual.keys() == expected.keys()
    for table in expected:
        got, want = actual[table], expected[table]
        assert len(got) == len(want), f"{table}: {len(got)} rows, expected {len(want)}"
        for g, w in zip(got, want, strict=True):
            exact_g = [v for v in g if not isinstance(v, float)]
            exact_w = [v for v in w if not isinstance(v, float)]
            assert exact_g == exact_w, f"{table}: {g} != {w}"
            assert [v for v in g if isinstance(v, float)] == pytest.approx(
                [v for v in w if isinstance(v, float)], abs=1e-5
            ), f"{table}: {g} != {w}"


def postgres_or_skip():
    """Start the throwaway server, or skip (pytest) saying why it cannot start here."""
    import pytest

    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (the postgres extra)")
    server = postgres_server()
    try:
        url = server.__enter__()
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL server could not start here: {exc}")
    return server, url


_created = iter(range(1_000_000))


def new_database(admin_url: str, label: str) -> str:
    """A new, empty database on the test server; returns its URL."""
    import psycopg

    name = f"{label}_{next(_created)}_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def milestone(store: Any, run_id: str, arm: str, step: int) -> None:
    """Write one milestone, with its model and a one-generation evaluation, as the pipeline does."""
    ev = dict(
        eval_id=f"{run_id}/{arm}/0/{step}",
        run_id=run_id,
        model_id=f"{run_id}/{arm}@{step}",
        spec={},
        generations=[
            {"prompt_set": "harmful", "prompt_id": "p1", "category": None, "prompt": "q", "completion": "a"}
        ],
        verdicts=[],
        metrics=[
            {"name": "harmful_compliance_rate", "value": step / 10, "ci_low": 0.0, "ci_high": 1.0, "n": 20}
        ],
    )
    budget = {"steps": step, "examples": 2 * step, "tokens": 100 * step, "flops": 1e12 * step, "seconds": 0.5}
    model = {
        "model_id": f"{run_id}/{arm}@{step}",
        "label": f"{arm}@{step}",
        "parent_id": "base",
        "run_id": run_id,
    }
    store.save_milestone(run_id, arm, 0, step, budget, train_loss=1.0, model=model, evaluation=ev)
