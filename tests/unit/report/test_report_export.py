"""Export: one row per milestone per arm per seed, documented columns, CSV and Parquet."""

from __future__ import annotations

import csv
import sys

import pytest

import tamperlab.report
from tamperlab.errors import TamperlabError
from tamperlab.report import COLUMNS, export_run
from tamperlab.report.export import BASE_COLUMNS, STANDARD_METRICS

N_ROWS = 15 * 3 * 7  # arms x seeds x milestones in the fixture


def test_csv_has_one_row_per_milestone_arm_and_seed_with_documented_columns(report_store, tmp_path):
    store, run_id = report_store
    paths = export_run(store, run_id, tmp_path, formats=("csv",))
    assert list(paths) == ["csv"] and paths["csv"].name == f"{run_id}_milestones.csv"
    with paths["csv"].open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = reader.fieldnames
    assert len(rows) == N_ROWS
    assert len({(r["arm"], r["seed"], r["step"]) for r in rows}) == N_ROWS
    # Every fixed column is present, and every column is documented (directly or by its pattern).
    for column in BASE_COLUMNS + STANDARD_METRICS:
        assert column in header
    for column in header:
        stem = next((column[: -len(s)] for s in ("_ci_low", "_ci_high", "_n") if column.endswith(s)), column)
        assert stem in COLUMNS or stem.startswith(
            ("harmful_compliance_rate@", "judge_kappa:", "judge_agreement:")
        )
    assert "harmful_compliance_rate@keyword" in header and "judge_kappa:embedding~keyword" in header
    first = next(
        r
        for r in rows
        if r["arm"] == "undefended/harmful-sft-full#1" and r["seed"] == "0" and r["step"] == "8"
    )
    assert (
        first["defense"] == "undefended"
        and first["attack"] == "harmful-sft"
        and '"mode": "full"' in first["attack_args"]
    )
    assert first["examples"] == "64" and float(first["harmful_compliance_rate_n"]) == 20
    assert first["kl_from_reference"] != "" and float(first["kl_from_reference"]) > 0


def test_parquet_matches_csv(report_store, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    store, run_id = report_store
    paths = export_run(store, run_id, tmp_path)
    table = pq.read_table(paths["parquet"])
    assert table.num_rows == N_ROWS
    with paths["csv"].open(newline="") as handle:
        assert table.column_names == next(csv.reader(handle))


def test_parquet_without_pyarrow_or_pandas_names_the_extra_and_writes_nothing(
    report_store, tmp_path, monkeypatch
):
    store, run_id = report_store
    for name in ("pyarrow", "pyarrow.parquet", "pandas"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(TamperlabError, match=r"pip install 'tamperlab\[export\]'"):
        export_run(store, run_id, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_format_is_an_error(report_store, tmp_path):
    store, run_id = report_store
    with pytest.raises(TamperlabError, match="unknown export format"):
        export_run(store, run_id, tmp_path, formats=("xlsx",))


def test_columns_are_documented_in_the_report_module_docstring():
    doc = tamperlab.report.__doc__
    for column, meaning in COLUMNS.items():
        assert f"``{column}``: {meaning}" in doc, column
