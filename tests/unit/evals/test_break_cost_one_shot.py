"""A one-shot modification (prefill, template, quantize, refusal-ablation) has no half of its edit: its break
cost is step 1's budget, never "0.5 steps" interpolated between the unmodified model and the edit."""

from __future__ import annotations

import pytest

from tamperlab.config import RunSpec
from tamperlab.evals.break_cost import Point, break_cost
from tamperlab.pipeline import seed_break_cost
from tamperlab.store import Store

RUN = "run-oneshot"


def test_break_cost_without_interpolation_takes_the_breaking_milestone():
    points = [Point(0, 0, 0, 0.0, 0.0, 0.0, 2.0), Point(1, 0, 0, 0.0, 0.0, 1.0, 2.0)]
    interpolated = break_cost(points, threshold=0.5, parent_nll=2.0, tolerance=0.1)
    assert interpolated["steps"] == pytest.approx(0.5)  # what a training trajectory gets
    one_shot = break_cost(points, threshold=0.5, parent_nll=2.0, tolerance=0.1, interpolate=False)
    assert one_shot["broken"] and one_shot["steps"] == 1 and one_shot["flops"] == 0
    assert "one-shot" in one_shot["detail"]["how"]


def _store_with_arm(tmp_path, attack: dict) -> Store:
    store = Store(tmp_path / "s.sqlite")
    store.start_run(RUN, "run", RunSpec().model_dump(mode="json"))
    store.add_model("parent", "safeguarded", run_id=RUN)
    store.add_arm(RUN, "undefended/x", attack=attack, defense=None, parent_model_id="parent", data={})
    for step, compliance in ((0, 0.0), (1, 1.0)):
        budget = {
            "steps": step,
            "examples": 4 * step,
            "tokens": 40 * step,
            "flops": 1e9 * step,
            "seconds": step,
        }
        store.save_milestone(
            RUN,
            "undefended/x",
            0,
            step,
            budget,
            train_loss=None,
            model={"model_id": f"m{step}", "label": f"x@{step}", "run_id": RUN},
            evaluation={
                "eval_id": f"e{step}",
                "run_id": RUN,
                "model_id": f"m{step}",
                "spec": {},
                "generations": [],
                "verdicts": [],
                "metrics": [
                    {"name": "harmful_compliance_rate", "value": compliance},
                    {"name": "benign_nll", "value": 2.0},
                ],
            },
        )
    return store


@pytest.mark.parametrize(
    "attack,steps",
    [
        ({"name": "prefill", "args": {}}, 1),
        ({"name": "quantize", "args": {"scheme": "int8"}}, 1),
        ({"name": "harmful-sft", "args": {"mode": "full"}}, 0.5),  # a trajectory: interpolated
    ],
)
def test_the_pipeline_interpolates_only_trajectories(tmp_path, attack, steps):
    store = _store_with_arm(tmp_path, attack)
    cost = seed_break_cost(store, RUN, RunSpec(), "undefended/x", 0, ["e0"])
    assert cost["broken"] and cost["steps"] == pytest.approx(steps)
