"""The shipped example rubric and evidence: valid, scored on a default-run-shaped store, honest examples."""

from __future__ import annotations

import re

import pytest
import yaml
from scorecard_store import default_run_store

from tamperlab.scorecard import build_scorecard, example_path
from tamperlab.scorecard.evidence import load_evidence
from tamperlab.scorecard.rubric import load_rubric

RUBRIC = example_path("rubric_modification_readiness.yaml")
EVIDENCE = example_path("evidence_example.yaml")

# Developer-level example evidence must name no real company. Not exhaustive: it catches the obvious slip.
REAL_COMPANIES = [
    "openai", "anthropic", "google", "deepmind", "meta", "microsoft", "mistral", "hugging face",
    "huggingface", "alibaba", "deepseek", "xai", "cohere", "nvidia", "amazon", "apple", "stability",
    "eleutherai", "ai2",
]  # fmt: skip


def test_example_rubric_covers_the_issue_topics():
    rubric = load_rubric(RUBRIC)
    ids = {c.id for _, c in rubric.criteria()}
    assert {
        "modification-risk-testing",
        "break-cost",
        "capability-retained-under-attack",
        "over-refusal",
        "derivative-monitoring",
        "modification-terms",
        "staged-release-or-stop-threshold",
        "fine-tuning-api-safeguards",
        "incident-reporting",
    } <= ids
    assert any(c.weight == 0 for _, c in rubric.criteria())  # a tracked-only criterion is shown
    assert all(c.reason.strip() for _, c in rubric.criteria())
    alternatives = rubric.criterion("staged-release-or-stop-threshold").award
    assert {r.id for r in alternatives} >= {"staged-release", "stop-threshold"}


def test_example_developers_are_marked_and_name_no_real_company():
    evidence = load_evidence(EVIDENCE, load_rubric(RUBRIC))
    developers = [s for s in evidence.subjects if s.kind == "developer"]
    assert developers and all(s.example for s in developers)
    text = yaml.safe_dump([s.model_dump(mode="json") for s in developers]).lower()
    for name in REAL_COMPANIES:
        assert not re.search(rf"\b{re.escape(name)}\b", text), name
    models = [s for s in evidence.subjects if s.kind == "model"]
    assert {s.variant for s in models} == {"base", "undefended"}  # what the default run measures


def test_example_builds_against_a_default_run_store(tmp_path):
    store = default_run_store(tmp_path / "store.sqlite")
    result = build_scorecard(RUBRIC, EVIDENCE, store, tmp_path / "site")
    cells = {(c["subject"], c["criterion"]): c for c in result.document["cells"]}
    safeguarded = cells[("smollm2-safeguarded", "break-cost")]
    assert safeguarded["state"] == "measured" and safeguarded["level"] == 1  # 1.95e12 FLOPs: >= 1e11, < 1e13
    assert cells[("smollm2-safeguarded", "modification-risk-testing")]["level"] == 3  # full and LoRA
    assert cells[("example-developer-a", "staged-release-or-stop-threshold")]["route"] == "stop-threshold"
    assert cells[("example-developer-b", "staged-release-or-stop-threshold")]["route"] == "staged-release"
    assert result.totals["smollm2-safeguarded"] > result.totals["smollm2-base"]
    assert all(0 <= t <= 100 for t in result.totals.values())
    assert result.date == "2025-06-01"


def test_example_without_a_run_in_the_store_fails_before_writing(tmp_path):
    from tamperlab.errors import ConfigError
    from tamperlab.store import Store

    Store(tmp_path / "empty.sqlite").close()
    with pytest.raises(ConfigError, match=r"subjects\[0\]\.run: no complete run of kind 'run'"):
        build_scorecard(RUBRIC, EVIDENCE, tmp_path / "empty.sqlite", tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_scorecard_never_imports_torch():
    import subprocess
    import sys

    code = "import sys, tamperlab.scorecard; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
