"""A run's rows as plain records, so a worker on another machine can hand its results to the driver.

The Ray executor runs each pipeline against a private SQLite file on the worker, seeded with what the shared
store already holds for that run (so a retried run resumes from its committed milestones), and returns every
row of the run as plain dicts. The driver writes them into the shared store in one transaction: a run's
results land whole or not at all, and the shared store is only ever written by the driver.
"""

from __future__ import annotations

from typing import Any

from tamperlab.store import Store

# (table, how its rows are found for one run). Evaluation detail tables hang off the run's evaluations.
_BY_RUN = "WHERE run_id = ?"
_BY_EVAL = "WHERE eval_id IN (SELECT eval_id FROM evaluations WHERE run_id = ?)"
TABLES: tuple[tuple[str, str], ...] = (
    ("runs", _BY_RUN),
    ("models", _BY_RUN),
    ("evaluations", _BY_RUN),
    ("generations", _BY_EVAL),
    ("verdicts", _BY_EVAL),
    ("metrics", _BY_EVAL),
    ("arms", _BY_RUN),
    ("milestones", _BY_RUN),
    ("break_costs", _BY_RUN),
    ("summaries", _BY_RUN),
)

RunRecords = dict[str, list[dict[str, Any]]]


def export_run(store: Store, run_id: str, parents: bool = True) -> RunRecords:
    """Every row the store holds for ``run_id``: {table: [row dicts]}.

    With ``parents``, the models the run's models descend from are included even when another run recorded
    them first (a base model row belongs to whichever run met it first), so the records rebuild the lineage.
    """
    records: RunRecords = {}
    for table, where in TABLES:
        rows = store.conn.execute(f"SELECT * FROM {table} {where}", (run_id,)).fetchall()
        records[table] = [dict(r) for r in rows]
    if parents:
        known = {m["model_id"] for m in records["models"]}
        for model in list(records["models"]):
            for ancestor in store.ancestors(model["model_id"])[1:]:
                if ancestor["model_id"] not in known:
                    known.add(ancestor["model_id"])
                    row = store.conn.execute(
                        "SELECT * FROM models WHERE model_id = ?", (ancestor["model_id"],)
                    )
                    records["models"].append(dict(row.fetchone()))
    return records


def import_run(store: Store, records: RunRecords, on_write: Any = None) -> int:
    """Write a run's records in one transaction (idempotent: rows are replaced by primary key); returns rows.

    Models are inserted only when missing, as :meth:`Store.add_model` does. ``on_write`` (a no-argument
    callable) is called inside the transaction before it commits; the crash tests use it to die mid-write.
    """
    written = 0
    with store.transaction() as conn:
        for table, _ in TABLES:
            rows = records.get(table) or []
            if not rows:
                continue
            columns = list(rows[0])
            verb = "INSERT OR IGNORE" if table == "models" else "INSERT OR REPLACE"
            sql = f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])
            written += len(rows)
        if on_write is not None:
            on_write()
    return written
