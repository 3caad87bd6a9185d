"""Fixtures for the scorecard tests: the small rubric, evidence and store of scorecard_inputs.py."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scorecard_inputs import SMALL_EVIDENCE, SMALL_RUBRIC, small_store, write_yaml


@dataclass
class SmallInputs:
    """The small rubric and evidence as dicts to mutate, their store, and where a site would go."""

    rubric: dict[str, Any]
    evidence: dict[str, Any]
    store: Path
    out: Path
    folder: Path

    def write(self) -> tuple[Path, Path]:
        """Write the (possibly mutated) dicts as rubric.yaml and evidence.yaml; return their paths."""
        return write_yaml(self.folder / "rubric.yaml", self.rubric), write_yaml(
            self.folder / "evidence.yaml", self.evidence
        )


@pytest.fixture
def small(tmp_path) -> SmallInputs:
    return SmallInputs(
        rubric=copy.deepcopy(SMALL_RUBRIC),
        evidence=copy.deepcopy(SMALL_EVIDENCE),
        store=small_store(tmp_path / "store.sqlite"),
        out=tmp_path / "site",
        folder=tmp_path,
    )
