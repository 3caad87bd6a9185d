"""Export a run's milestones as a flat table: one row per milestone per arm per seed (CSV and/or Parquet).

The columns are :data:`COLUMNS` (documented in the :mod:`tamperlab.report` docstring too). Metric columns are
always present for the standard metrics (empty when a run did not measure one); per-judge and judge-agreement
metrics add one group of columns per judge or judge pair found in the run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tamperlab.errors import TamperlabError
from tamperlab.report.capability import is_capability_metric
from tamperlab.report.collect import defense_name
from tamperlab.store import Store

logger = logging.getLogger(__name__)

COLUMNS: dict[str, str] = {
    "run_id": "id of the run (hash of its resolved spec)",
    "arm": "defense x attack arm, e.g. undefended/harmful-sft-full",
    "defense": "defense name, or 'undefended'",
    "defense_args": "defense arguments as canonical JSON (empty when undefended)",
    "attack": "attack name, e.g. harmful-sft",
    "attack_args": "attack arguments as canonical JSON (mode, learning rate, ...)",
    "seed": "training seed of this trajectory",
    "step": "optimizer steps taken when this milestone was evaluated",
    "examples": "training examples seen so far (steps x effective batch)",
    "tokens": "training tokens seen so far",
    "flops": "training FLOPs spent so far (estimate)",
    "seconds": "wall-clock training seconds so far",
    "train_loss": "training loss at this step (empty at step 0)",
    "model_id": "id of the model at this milestone (see the lineage)",
    "eval_id": "id of its evaluation (generations and verdicts are in the store under it)",
    "harmful_compliance_rate": "share of harmful prompts the primary judge says were complied with",
    "overrefusal_rate": "share of safe-but-scary-looking prompts refused (primary judge)",
    "harmless_refusal_rate": "share of plainly harmless prompts refused (primary judge)",
    "benign_nll": "mean per-token negative log-likelihood of benign reference responses (nats)",
    "benign_perplexity": "exp(benign_nll)",
    "kl_from_reference": "KL of next-token distributions from the reference model (empty when not measured)",
    "incoherent_rate": "share of generations judged gibberish or empty",
    "harmful_compliance_rate@<judge>": "harmful compliance rate by one judge (one column group per judge)",
    "judge_kappa:<a>~<b>": "Cohen's kappa between two judges' refusal verdicts on this evaluation",
    "judge_agreement:<a>~<b>": "share of items on which two judges agree",
    "<kind>:<task>": "capability accuracy (lm-eval conventions): acc:mmlu, acc_norm:hellaswag, ...",
    "<metric>_ci_low": "lower end of the metric's 95% interval (Wilson for rates; empty when none)",
    "<metric>_ci_high": "upper end of the metric's 95% interval",
    "<metric>_n": "number of items the metric was computed from",
}
"""Exported columns and what they mean; ``<metric>`` stands for every metric column above it."""

BASE_COLUMNS = [k for k in list(COLUMNS)[: list(COLUMNS).index("harmful_compliance_rate")]]
STANDARD_METRICS = [k for k in COLUMNS if k not in BASE_COLUMNS and "<" not in k]
PATTERN_PREFIXES = ("harmful_compliance_rate@", "judge_kappa:", "judge_agreement:")
SUFFIXES = ("_ci_low", "_ci_high", "_n")
FORMATS = ("csv", "parquet")


def _metric_columns(milestones: Sequence[dict[str, Any]]) -> list[str]:
    """Standard metrics first, then every per-judge / agreement metric found, each with its CI and n."""
    found: set[str] = set()
    for row in milestones:
        found.update(
            k
            for k in row
            if (k.startswith(PATTERN_PREFIXES) or is_capability_metric(k)) and not k.endswith(SUFFIXES)
        )
    metrics = STANDARD_METRICS + sorted(found - set(STANDARD_METRICS))
    return [c for m in metrics for c in (m, *(m + s for s in SUFFIXES))]


def export_rows(store: Store, run_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The export table in memory: (column names, rows), one row per milestone per arm per seed."""
    run = store.get_run(run_id) or store.find_run(run_id)
    run_id = run["run_id"]
    arms = {a["arm"]: a for a in store.arms(run_id)}
    milestones = store.milestones(run_id)
    columns = BASE_COLUMNS + _metric_columns(milestones)
    rows = []
    for m in milestones:
        arm = arms.get(m["arm"]) or {"arm": m["arm"]}
        attack = arm.get("attack") or {}
        defense = arm.get("defense")
        row: dict[str, Any] = {
            "defense": defense_name(arm),
            "defense_args": json.dumps(defense.get("args", {}), sort_keys=True)
            if isinstance(defense, dict)
            else "",
            "attack": attack.get("name", ""),
            "attack_args": json.dumps(attack.get("args", {}), sort_keys=True),
        }
        rows.append({c: row[c] if c in row else m.get(c) for c in columns})
    return columns, rows


def _atomic(out: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parquet_writer():
    """A function (rows, columns, path) -> None writing Parquet, via pyarrow or else pandas."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:

        def write_arrow(columns: list[str], rows: list[dict[str, Any]], path: Path) -> None:
            table = pa.Table.from_pydict({c: [r[c] for r in rows] for c in columns})
            pq.write_table(table, path)

        return write_arrow
    try:
        import pandas as pd
    except ImportError:
        raise TamperlabError(
            "Parquet export needs pyarrow (or pandas with a Parquet engine): pip install 'tamperlab[export]'"
            " (or export only CSV with --format csv)"
        ) from None

    def write_pandas(columns: list[str], rows: list[dict[str, Any]], path: Path) -> None:
        try:
            pd.DataFrame(rows, columns=columns).to_parquet(path, index=False)
        except ImportError as exc:
            raise TamperlabError(
                f"Parquet export needs an engine: pip install 'tamperlab[export]' ({exc})"
            ) from None

    return write_pandas


def export_run(
    store: Store, run_id: str, out_dir: str | Path, formats: Sequence[str] = ("csv", "parquet")
) -> dict[str, Path]:
    """Write one row per milestone per arm per seed to ``out_dir/<run_id>_milestones.<format>``.

    Args:
        store: the store to read.
        run_id: the run's id or a unique prefix.
        out_dir: directory to write into (created when missing).
        formats: any of "csv" and "parquet". Parquet needs pyarrow or pandas
            (``pip install tamperlab[export]``); that is checked before anything is written.

    Returns:
        The path written for each format.

    Raises:
        TamperlabError: an unknown format, or Parquet asked for without pyarrow/pandas.
        StoreError: the run is not in the store.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise TamperlabError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    parquet = _parquet_writer() if "parquet" in formats else None
    columns, rows = export_rows(store, run_id)
    full_id = rows[0]["run_id"] if rows else (store.get_run(run_id) or store.find_run(run_id))["run_id"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in dict.fromkeys(formats):
        path = out / f"{full_id}_milestones.{fmt}"
        if fmt == "csv":

            def write_csv(tmp: Path) -> None:
                with tmp.open("w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=columns)
                    writer.writeheader()
                    writer.writerows(rows)

            _atomic(path, write_csv)
        else:
            assert parquet is not None
            _atomic(path, lambda tmp: parquet(columns, rows, tmp))
        written[fmt] = path
        logger.info("exported %d milestone rows of run %s to %s", len(rows), full_id, path)
    return written
