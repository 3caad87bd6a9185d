"""SQLite store (stdlib ``sqlite3``, WAL mode): the one place results live.

Each write is one short transaction, so an interrupted process leaves either the whole result or nothing, and
several processes can write one database at once (WAL plus a busy timeout). An evaluation is marked complete
in the same transaction that writes its generations, verdicts and metrics, and a milestone row is written in
the same transaction as its evaluation: a crash never leaves a half-written result marked complete.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from tamperlab.errors import StoreError

SCHEMA_VERSION = "2"
APP = "tamperlab"
HEARTBEAT_S = 60.0
"""How often a running run's heartbeat (table ``heartbeats``: host, pid, time) is rewritten."""
STALE_AFTER_S = 600.0
"""A running run on another host whose heartbeat is older than this reads as interrupted."""
DIVERGED_KEY = "diverged:"
"""Summary key prefix of a diverged trajectory's record: ``diverged:<arm>:<seed>``."""

ADDITIVE_MIGRATIONS = {"1": "2"}
"""Older schema versions this one can read as they are and migrate, keeping every row, when it opens them for
writing (see :meth:`Store._migrate`)."""


def now() -> str:
    """UTC timestamp in ISO 8601, second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _capability_row(eval_id: str, item: Any) -> tuple:
    """One capability_items row from an ItemScore (or a dict with its fields)."""
    get = item.get if isinstance(item, dict) else lambda key, default=None: getattr(item, key, default)
    norm = get("correct_norm")
    return (
        eval_id,
        get("task"),
        str(get("item_id")),
        get("subject"),
        _dumps(list(get("gold"))),
        int(get("chosen")),
        get("chosen_norm"),
        int(bool(get("correct"))),
        None if norm is None else int(bool(norm)),
        _dumps(list(get("logliks"))),
        _dumps(list(get("greedy") or [])),
        _dumps(get("extra") or None),
    )


class Store:
    """A tamperlab results database.

    Args:
        path: the SQLite file; created (with its directory) when missing.
        readonly: open without creating or migrating (the report and the scorecard use this).
    """

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        if isinstance(path, str) and path.startswith(("postgresql://", "postgres://")):
            from tamperlab.store.postgres import attach

            attach(
                self, path, readonly
            )  # a PostgreSQL connection speaking this class's SQL; checks or creates
            return
        from tamperlab.store.postgres import reject_folded_url

        reject_folded_url(str(path))
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise StoreError(f"no tamperlab store at {self.path}")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        try:
            self.conn = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA busy_timeout = 60000")
            self._check_or_create(readonly)
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "conn"):
                self.conn.close()
            raise StoreError(f"{self.path} is not a tamperlab store ({exc})") from None
        except StoreError:
            self.conn.close()  # no -wal/-shm left beside a database that is not ours
            raise

    # -- plumbing --------------------------------------------------------------------------------------------

    def _check_or_create(self, readonly: bool) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" in tables:
            meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("app") != APP:
                raise StoreError(
                    f"{self.path} is not a tamperlab store (its meta table belongs to something else)"
                )
            version = meta.get("schema_version")
            if version != SCHEMA_VERSION and version not in ADDITIVE_MIGRATIONS:
                raise StoreError(
                    f"{self.path} has store schema {meta.get('schema_version')},"
                    f" this tamperlab reads {SCHEMA_VERSION}"
                )
        elif tables:
            raise StoreError(
                f"{self.path} is an SQLite database but not a tamperlab store (tables: {sorted(tables)})"
            )
        elif readonly:
            raise StoreError(f"{self.path} is empty, not a tamperlab store")
        if not readonly:
            # Only now that the file is ours (or new): switching to WAL rewrites the file's header.
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
        if "meta" in tables:
            if not readonly and (meta.get("schema_version") != SCHEMA_VERSION or "heartbeats" not in tables):
                self._migrate(meta["schema_version"])  # an older store: its rows kept, new tables added
            return
        self._create_schema()

    def _migrate(self, version: str) -> None:
        """Bring a store of an older schema to this one, keeping every row.

        1 → 2: the capability_items table is new, and break_costs.capability_bound may be NULL (a break
        bounded by accuracy alone); SQLite cannot drop a NOT NULL, so that table is rebuilt with its rows
        copied.
        """
        if version == "1":
            schema = resources.files("tamperlab.store").joinpath("schema.sql").read_text()
            create = next(s for s in schema.split(";") if "CREATE TABLE IF NOT EXISTS break_costs" in s)
            with self.transaction() as conn:
                conn.execute("ALTER TABLE break_costs RENAME TO break_costs_schema1")
                conn.execute(create)
                conn.execute("INSERT INTO break_costs SELECT * FROM break_costs_schema1")
                conn.execute("DROP TABLE break_costs_schema1")
        self._create_schema()

    def _create_schema(self) -> None:
        """Create every table the schema names that is missing, and record this schema version."""
        schema = resources.files("tamperlab.store").joinpath("schema.sql").read_text()
        with self.transaction() as conn:
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('app', ?)", (APP,))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (now(),))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front, avoiding upgrade
        deadlocks)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, params).fetchall()]

    # -- runs ------------------------------------------------------------------------------------------------

    def start_run(self, run_id: str, kind: str, spec: dict, provenance: dict | None = None) -> str | None:
        """Record a run as running; return its previous status (None when new, 'complete' means skip it)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO runs (run_id, kind, spec_json, status, provenance_json, created_at)"
                    " VALUES (?, ?, ?, 'running', ?, ?)",
                    (run_id, kind, _dumps(spec), _dumps(provenance), now()),
                )
                self._beat(conn, run_id)
                return None
            if row["status"] != "complete":
                conn.execute(
                    "UPDATE runs SET status = 'running', error = NULL, provenance_json = ? WHERE run_id = ?",
                    (_dumps(provenance), run_id),
                )
                self._beat(conn, run_id)
            return row["status"]

    @staticmethod
    def _beat(conn: Any, run_id: str) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO heartbeats VALUES (?, ?, ?, ?)",
            (run_id, socket.gethostname(), os.getpid(), now()),
        )

    def heartbeat(self, run_id: str) -> None:
        """Record that this process is still working on ``run_id`` (see :meth:`interrupted`)."""
        with self.transaction() as conn:
            self._beat(conn, run_id)

    @contextmanager
    def beating(self, run_id: str, every: float = HEARTBEAT_S) -> Iterator[None]:
        """Keep ``run_id``'s heartbeat fresh from a background thread (on its own connection) while the block
        runs, so a run killed without a word reads as interrupted, not running, in ``tamperlab ls``."""
        target = getattr(self.conn, "url", None) or str(self.path)  # PostgreSQL: the unredacted URL
        stop = threading.Event()

        def beat() -> None:
            from tamperlab.store.factory import open_store

            try:
                store = open_store(target)
            except Exception:  # noqa: BLE001  (a heartbeat never takes the run down)
                return
            try:
                while not stop.wait(every):
                    try:
                        store.heartbeat(run_id)
                    except Exception:  # noqa: BLE001
                        pass
            finally:
                store.close()

        thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def interrupted(self, run: dict[str, Any]) -> bool:
        """Whether a run recorded as running has nobody working on it: its process is dead (on this host), or
        its heartbeat is older than STALE_AFTER_S (another host). Runs without a heartbeat: False."""
        if run.get("status") != "running":
            return False
        try:
            rows = self._rows("SELECT * FROM heartbeats WHERE run_id = ?", (run["run_id"],))
        except sqlite3.OperationalError:  # a read-only store from before heartbeats
            return False
        if not rows:
            return False
        beat = rows[0]
        if beat["host"] == socket.gethostname():
            return not _pid_alive(int(beat["pid"] or 0))
        try:
            age = (datetime.now(UTC) - datetime.fromisoformat(str(beat["beat_at"]))).total_seconds()
        except ValueError:
            return False
        return age > STALE_AFTER_S

    def finish_run(
        self, run_id: str, status: str, error: str | None = None, wall_seconds: float | None = None
    ) -> None:
        """Mark a run complete, failed or diverged."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ?, wall_seconds = ? WHERE run_id = ?",
                (status, error, now(), wall_seconds, run_id),
            )

    def add_run_seconds(self, run_id: str, seconds: float) -> None:
        """Add a process's time to a run that goes on (a shard that finished its part): the run's final
        process adds its own and records the total when it finishes the run."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET wall_seconds = COALESCE(wall_seconds, 0) + ? WHERE run_id = ?",
                (seconds, run_id),
            )

    def _run_row(self, row: dict[str, Any]) -> dict[str, Any]:
        row["spec"] = _loads(row.pop("spec_json"))
        row["provenance"] = _loads(row.pop("provenance_json"))
        # What to show: the stored status, except a "running" run that nobody runs any more.
        row["state"] = "interrupted" if self.interrupted(row) else row["status"]
        return row

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return self._run_row(rows[0]) if rows else None

    def find_run(self, prefix: str) -> dict[str, Any]:
        """The run whose id starts with ``prefix``; StoreError when none or several match."""
        rows = self._rows("SELECT * FROM runs WHERE run_id LIKE ? ORDER BY created_at", (prefix + "%",))
        if not rows:
            raise StoreError(f"no run {prefix!r} in {self.path}")
        if len(rows) > 1:
            raise StoreError(f"run id {prefix!r} is ambiguous: {', '.join(r['run_id'] for r in rows[:5])}")
        return self._run_row(rows[0])

    def list_runs(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY created_at, run_id"
        return [self._run_row(r) for r in self._rows(sql, (kind,) if kind else ())]

    def latest_run(self, kind: str | None = None, complete_only: bool = False) -> dict[str, Any] | None:
        runs = [r for r in self.list_runs(kind) if not complete_only or r["status"] == "complete"]
        return runs[-1] if runs else None

    # -- models (lineage) ------------------------------------------------------------------------------------

    def add_model(
        self,
        model_id: str,
        label: str,
        *,
        parent_id: str | None = None,
        run_id: str | None = None,
        source: str | None = None,
        modification: dict | None = None,
        budget: dict | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Record a model (idempotent: the same id is written once)."""
        sql = (
            "INSERT OR IGNORE INTO models (model_id, parent_id, run_id, label, source, modification_json,"
            " budget_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        params = (model_id, parent_id, run_id, label, source, _dumps(modification), _dumps(budget), now())
        if conn is not None:
            conn.execute(sql, params)
            return
        with self.transaction() as c:
            c.execute(sql, params)

    def _model_row(self, row: dict[str, Any]) -> dict[str, Any]:
        row["modification"] = _loads(row.pop("modification_json"))
        row["budget"] = _loads(row.pop("budget_json"))
        return row

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM models WHERE model_id = ?", (model_id,))
        return self._model_row(rows[0]) if rows else None

    def ancestors(self, model_id: str) -> list[dict[str, Any]]:
        """The model and its parents up to the base, nearest first."""
        chain, seen = [], set()
        current = self.get_model(model_id)
        while current is not None and current["model_id"] not in seen:
            seen.add(current["model_id"])
            chain.append(current)
            current = self.get_model(current["parent_id"]) if current["parent_id"] else None
        return chain

    def lineage(self, run_id: str) -> list[dict[str, Any]]:
        """Every model a run produced plus their ancestors, parents before children."""
        produced = self._rows("SELECT model_id FROM models WHERE run_id = ?", (run_id,))
        by_id: dict[str, dict[str, Any]] = {}
        for row in produced:
            for model in self.ancestors(row["model_id"]):
                by_id.setdefault(model["model_id"], model)
        ordered: list[dict[str, Any]] = []
        placed: set[str] = set()
        while len(ordered) < len(by_id):
            progressed = False
            for mid, model in by_id.items():
                if mid not in placed and (
                    model["parent_id"] is None
                    or model["parent_id"] in placed
                    or model["parent_id"] not in by_id
                ):
                    ordered.append(model)
                    placed.add(mid)
                    progressed = True
            if not progressed:  # a cycle cannot be written by tamperlab, but never loop forever
                break
        return ordered

    # -- evaluations -----------------------------------------------------------------------------------------

    def evaluation_status(self, eval_id: str) -> str | None:
        row = self.conn.execute("SELECT status FROM evaluations WHERE eval_id = ?", (eval_id,)).fetchone()
        return None if row is None else row["status"]

    def get_evaluation(self, eval_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM evaluations WHERE eval_id = ?", (eval_id,))
        if not rows:
            return None
        row = rows[0]
        row["spec"] = _loads(row.pop("spec_json"))
        row["metrics"] = self.metrics(eval_id)
        return row

    def save_evaluation(
        self,
        eval_id: str,
        *,
        run_id: str | None,
        model_id: str | None,
        spec: dict,
        generations: Sequence[dict[str, Any]],
        verdicts: Sequence[dict[str, Any]],
        metrics: Sequence[dict[str, Any]],
        seconds: float | None = None,
        capability_items: Sequence[Any] = (),
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Write a whole evaluation and mark it complete, in one transaction (or inside ``conn``'s).

        generations: dicts with prompt_set, prompt_id, category, prompt, completion.
        verdicts: dicts with prompt_set, prompt_id, judge, refused, score.
        metrics: dicts with name, value, and optional ci_low, ci_high, n.
        capability_items: :class:`~tamperlab.evals.accuracy.ItemScore` records (or dicts with their fields).
        """
        if conn is None:
            with self.transaction() as c:
                self.save_evaluation(
                    eval_id,
                    run_id=run_id,
                    model_id=model_id,
                    spec=spec,
                    generations=generations,
                    verdicts=verdicts,
                    metrics=metrics,
                    seconds=seconds,
                    capability_items=capability_items,
                    conn=c,
                )
            return
        for table in ("generations", "verdicts", "metrics", "capability_items", "evaluations"):
            conn.execute(f"DELETE FROM {table} WHERE eval_id = ?", (eval_id,))
        conn.execute(
            "INSERT INTO evaluations"
            " (eval_id, run_id, model_id, spec_json, status, created_at, finished_at, seconds)"
            " VALUES (?, ?, ?, ?, 'complete', ?, ?, ?)",
            (eval_id, run_id, model_id, _dumps(spec), now(), now(), seconds),
        )
        conn.executemany(
            "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?)",
            [
                (eval_id, g["prompt_set"], g["prompt_id"], g.get("category"), g["prompt"], g["completion"])
                for g in generations
            ],
        )
        conn.executemany(
            "INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    eval_id,
                    v["prompt_set"],
                    v["prompt_id"],
                    v["judge"],
                    int(bool(v["refused"])),
                    v.get("score"),
                )
                for v in verdicts
            ],
        )
        conn.executemany(
            "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
            [
                (eval_id, m["name"], m["value"], m.get("ci_low"), m.get("ci_high"), m.get("n"))
                for m in metrics
            ],
        )
        conn.executemany(
            "INSERT INTO capability_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_capability_row(eval_id, item) for item in capability_items],
        )

    def capability_items(self, eval_id: str, task: str | None = None) -> list[dict[str, Any]]:
        """An evaluation's scored capability items (every choice's log-likelihood, the choice made, gold)."""
        sql = "SELECT * FROM capability_items WHERE eval_id = ?"
        params: list[Any] = [eval_id]
        if task is not None:
            sql += " AND task = ?"
            params.append(task)
        try:
            rows = self._rows(sql + " ORDER BY task, item_id", params)
        except sqlite3.DatabaseError as exc:
            if "capability_items" not in str(exc):
                raise
            return []  # a store of schema 1 opened read-only: it has no capability items
        for r in rows:
            for key in ("gold", "logliks", "greedy", "extra"):
                r[key] = _loads(r.pop(f"{key}_json"))
            for key in ("correct", "correct_norm"):
                r[key] = None if r[key] is None else bool(r[key])
        return rows

    def metrics(self, eval_id: str) -> dict[str, dict[str, Any]]:
        """An evaluation's metrics by name: {name: {value, ci_low, ci_high, n}}."""
        rows = self._rows("SELECT name, value, ci_low, ci_high, n FROM metrics WHERE eval_id = ?", (eval_id,))
        return {r.pop("name"): r for r in rows}

    def generations(self, eval_id: str, prompt_set: str | None = None) -> list[dict[str, Any]]:
        """An evaluation's generations, each with ``verdicts``: {judge: {refused, score}}."""
        sql = "SELECT * FROM generations WHERE eval_id = ?" + (" AND prompt_set = ?" if prompt_set else "")
        params: tuple = (eval_id, prompt_set) if prompt_set else (eval_id,)
        rows = self._rows(sql + " ORDER BY prompt_set, prompt_id", params)
        verdicts: dict[tuple[str, str], dict[str, Any]] = {}
        for v in self._rows("SELECT * FROM verdicts WHERE eval_id = ?", (eval_id,)):
            verdicts.setdefault((v["prompt_set"], v["prompt_id"]), {})[v["judge"]] = {
                "refused": bool(v["refused"]),
                "score": v["score"],
            }
        for row in rows:
            row["verdicts"] = verdicts.get((row["prompt_set"], row["prompt_id"]), {})
        return rows

    # -- arms, milestones, break costs -----------------------------------------------------------------------

    def add_arm(
        self,
        run_id: str,
        arm: str,
        *,
        attack: dict,
        defense: dict | None,
        parent_model_id: str | None,
        data: dict | None,
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO arms VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, arm, _dumps(defense), _dumps(attack), parent_model_id, _dumps(data)),
            )

    def arms(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM arms WHERE run_id = ? ORDER BY arm", (run_id,))
        for row in rows:
            for key in ("defense", "attack", "data"):
                row[key] = _loads(row.pop(f"{key}_json"))
        return rows

    def save_milestone(
        self,
        run_id: str,
        arm: str,
        seed: int,
        step: int,
        budget: dict[str, float],
        *,
        train_loss: float | None,
        model: dict[str, Any],
        evaluation: dict[str, Any],
    ) -> None:
        """Write a milestone, the model it produced and that model's evaluation, in one transaction.

        budget: steps, examples, tokens, flops, seconds. model: kwargs of :meth:`add_model` (with model_id,
        label), or just ``{"model_id"}`` for a model already recorded. evaluation: kwargs of
        :meth:`save_evaluation` (with eval_id), or just ``{"eval_id"}`` to point at a stored evaluation.
        """
        with self.transaction() as conn:
            if set(model) != {
                "model_id"
            }:  # only an id: the model is already recorded (e.g. step 0 = the parent)
                self.add_model(conn=conn, **model)
            if set(evaluation) != {"eval_id"}:  # only an id: reuse a stored evaluation
                self.save_evaluation(conn=conn, **evaluation)
            conn.execute(
                "INSERT OR REPLACE INTO milestones VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    arm,
                    seed,
                    step,
                    int(budget["examples"]),
                    int(budget["tokens"]),
                    float(budget["flops"]),
                    float(budget["seconds"]),
                    train_loss,
                    model["model_id"],
                    evaluation["eval_id"],
                ),
            )

    def completed_steps(self, run_id: str, arm: str, seed: int) -> set[int]:
        rows = self.conn.execute(
            "SELECT step FROM milestones WHERE run_id = ? AND arm = ? AND seed = ?", (run_id, arm, seed)
        ).fetchall()
        return {r["step"] for r in rows}

    def milestones(self, run_id: str, arm: str | None = None) -> list[dict[str, Any]]:
        """Milestone rows with their evaluation's metrics flattened in (``<name>``, ``<name>_ci_low``,
        ...)."""
        sql = "SELECT * FROM milestones WHERE run_id = ?" + (" AND arm = ?" if arm else "")
        rows = self._rows(sql + " ORDER BY arm, seed, step", (run_id, arm) if arm else (run_id,))
        for row in rows:
            for name, m in self.metrics(row["eval_id"]).items():
                row[name] = m["value"]
                row[f"{name}_ci_low"] = m["ci_low"]
                row[f"{name}_ci_high"] = m["ci_high"]
                row[f"{name}_n"] = m["n"]
        return rows

    def save_break_cost(self, run_id: str, arm: str, seed: int, cost: dict[str, Any]) -> None:
        """Store a break cost (seed -1 for the aggregate over seeds)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO break_costs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    arm,
                    seed,
                    cost["threshold"],
                    cost["capability_bound"],
                    int(bool(cost["broken"])),
                    cost.get("steps"),
                    cost.get("examples"),
                    cost.get("tokens"),
                    cost.get("flops"),
                    cost.get("seconds"),
                    _dumps(cost.get("detail")),
                ),
            )

    def break_costs(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM break_costs WHERE run_id = ? ORDER BY arm, seed", (run_id,))
        for row in rows:
            row["broken"] = bool(row["broken"])
            row["detail"] = _loads(row.pop("detail_json"))
        return rows

    def put_summary(self, run_id: str, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?)", (run_id, key, _dumps(value)))

    def summaries(self, run_id: str) -> dict[str, Any]:
        rows = self._rows("SELECT key, value_json FROM summaries WHERE run_id = ?", (run_id,))
        return {r["key"]: _loads(r["value_json"]) for r in rows}

    def save_divergence(self, run_id: str, arm: str, seed: int, record: dict[str, Any]) -> None:
        """Record that one trajectory (arm, seed) diverged: ``record`` holds its ``step``, ``error`` and the
        ``budget`` of the steps completed before it. A measured outcome: a rerun skips the trajectory."""
        self.put_summary(run_id, f"{DIVERGED_KEY}{arm}:{seed}", {"arm": arm, "seed": seed, **record})

    def divergences(self, run_id: str) -> list[dict[str, Any]]:
        """The run's diverged trajectories (see :meth:`save_divergence`), by arm and seed."""
        return divergences_of(self.summaries(run_id))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def divergences_of(summaries: dict[str, Any]) -> list[dict[str, Any]]:
    """The diverged-trajectory records among a run's summaries, sorted by arm and seed."""
    found = [v for k, v in summaries.items() if k.startswith(DIVERGED_KEY) and isinstance(v, dict)]
    return sorted(found, key=lambda r: (str(r.get("arm")), int(r.get("seed") or 0)))
