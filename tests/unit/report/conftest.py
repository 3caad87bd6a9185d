"""The report's fixture store (tests/fixtures/report_store.py), built once in a temporary directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

FIXTURE_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "report_store.py"


def load_fixture_module() -> ModuleType:
    """tests/fixtures/report_store.py, loaded by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("report_store_fixture", FIXTURE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def report_fixture() -> ModuleType:
    return load_fixture_module()


@pytest.fixture(scope="session")
def report_store(tmp_path_factory, report_fixture):
    """(store, run_id) of a finished fixture run: 4 arms x 3 seeds x 7 milestones; tests only read it."""
    store, run_id = report_fixture.build_report_store(tmp_path_factory.mktemp("report_store") / "store.db")
    yield store, run_id
    store.close()


@pytest.fixture(scope="session")
def report_html(report_store) -> str:
    from tamperlab.report import build_report

    store, run_id = report_store
    return build_report(store, run_id)
