"""pyproject's package data and the package's data files agree.

An installed (not editable) tamperlab has every file it reads (the store's schema.sql, the report's CSS and
script, the built-in sets, the judge's head), and pyproject lists no pattern that matches nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "src" / "tamperlab"


def _patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-data"]["tamperlab"]


def test_every_data_file_in_the_package_is_listed():
    data_files = {
        p.relative_to(PACKAGE)
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    listed = {p.relative_to(PACKAGE) for pattern in _patterns() for p in PACKAGE.glob(pattern)}
    assert sorted(map(str, data_files - listed)) == []


def test_every_listed_pattern_matches_a_file():
    assert [pattern for pattern in _patterns() if not list(PACKAGE.glob(pattern))] == []
