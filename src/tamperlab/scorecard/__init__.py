"""Scorecard: a rubric, evidence in labelled states (measured / committed / claimed) and a static site.

``build_scorecard(rubric, evidence, store, out_dir)`` is the one entry point: it validates everything (rubric,
evidence against the rubric, runs against the store, every measured figure) before writing anything, then
writes the site atomically. See :mod:`tamperlab.scorecard.rubric` and :mod:`tamperlab.scorecard.evidence` for
the YAML formats and :mod:`tamperlab.scorecard.measures` for the store queries behind measured rules.
"""

from importlib import resources
from pathlib import Path

from tamperlab.scorecard.build import ScorecardResult, build_scorecard
from tamperlab.scorecard.scoring import diff_snapshots


def example_path(name: str) -> Path:
    """Path of a shipped example: 'rubric_modification_readiness.yaml' or 'evidence_example.yaml'."""
    return Path(str(resources.files("tamperlab.scorecard").joinpath("examples", name)))


__all__ = ["ScorecardResult", "build_scorecard", "diff_snapshots", "example_path"]
