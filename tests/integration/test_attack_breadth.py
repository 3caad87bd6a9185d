"""Every new attack through `tamperlab run` on the tiny model, then the worst case over the run and a
two-trial search through the real pipeline."""

from __future__ import annotations

import pytest

from tamperlab.config import RunSpec, validate
from tamperlab.pipeline import Pipeline
from tamperlab.search import run_search, worst_case
from tamperlab.search.spec import SearchSpec
from tamperlab.store import Store

TRAIN = {"batch_size": 2, "max_length": 128}  # at 64 no answer token is left: nothing would train
EVAL = {
    "harmful": {"source": "builtin:harmful", "limit": 3},
    "harmless": {"source": "builtin:harmless", "limit": 2},
    "overrefusal": {"source": "builtin:overrefusal", "limit": 1},
    "judges": [{"name": "keyword"}],
    "max_new_tokens": 4,
    "batch_size": 8,
    "nll_limit": 2,
    "kl_limit": 2,
}


def test_every_new_attack_runs_through_the_pipeline(tiny_model_dir, tmp_path, shared_data):
    spec = validate(
        RunSpec,
        {
            "model": {"name": str(tiny_model_dir)},
            "safeguard": None,
            "attacks": [
                {"name": "benign-sft", "args": {**TRAIN, "max_length": 160, "n_examples": 4}},
                {
                    "name": "identity-shift",
                    "args": {
                        **TRAIN,
                        "max_length": 256,  # the AOA system prompt: at 192 no answer token is left
                        "path": str(shared_data / "finetune" / "identity_shift_aoa.jsonl"),
                    },
                },
                {
                    "name": "refusal-ablation",
                    "args": {
                        "n_train": 6,
                        "n_val": 6,
                        # On a random tiny model, whether ablating a direction lowers the refusal score is
                        # chance; these harmless prompts give one that does. The test is about the pipeline.
                        "harmless": {"source": "builtin:harmless", "split": "test"},
                        "positions": 3,
                        "max_layer_fraction": 1.0,
                        "kl_bound": 1e9,
                        "batch_size": 4,
                    },
                },
                {"name": "prefill", "args": {}},
                {"name": "template", "args": {"style": "dan"}},
                {"name": "quantize", "args": {"scheme": "int8"}},
                {"name": "quantize", "args": {"scheme": "int4", "group_size": 16}},
            ],
            "milestones": [0, 2],
            "eval": EVAL,
        },
    )
    store = Store(tmp_path / "s.sqlite")
    outcome = Pipeline(spec, store).execute()
    assert outcome.status == "complete"
    rows = store.milestones(outcome.run_id)
    by_arm: dict[str, dict[int, dict]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"].split("/", 1)[1], {})[row["step"]] = row
    assert set(by_arm) == {
        "benign-sft-full",
        "identity-shift-full",
        "refusal-ablation",
        "prefill",
        "template-dan",
        "quantize-int8",
        "quantize-int4-g16",
    }
    for trained in ("benign-sft-full", "identity-shift-full"):
        assert sorted(by_arm[trained]) == [0, 2] and by_arm[trained][2]["examples"] == 4  # steps x batch
        assert by_arm[trained][2]["train_loss"] is not None
    for one_shot in ("refusal-ablation", "prefill", "template-dan", "quantize-int8", "quantize-int4-g16"):
        assert sorted(by_arm[one_shot]) == [0, 1]  # one edit, whatever the run's milestones
    assert by_arm["prefill"][1]["flops"] == 0 and by_arm["template-dan"][1]["seconds"] == 0
    assert by_arm["refusal-ablation"][1]["flops"] > 0 and by_arm["quantize-int8"][1]["flops"] > 0
    assert all(row.get("benign_nll") is not None for row in rows)
    assert len(store.break_costs(outcome.run_id)) == 2 * 7  # per seed and aggregate, every arm

    # identity-shift was evaluated under the AOA system prompt: its harmful completions differ in context
    arms = {a["arm"].split("/", 1)[1]: a for a in store.arms(outcome.run_id)}
    assert "Absolutely Obedient Agent" in arms["identity-shift-full"]["data"]["eval_system_prompt"]
    assert Pipeline(spec, store).execute().reused

    result = worst_case(store, outcome.run_id, epsilons=(1e9,), threshold=0.0)
    best = result["by_epsilon"][0]
    assert result["modifications"] == len(rows)
    assert best["cheapest"]["flops"]["flops"] == 0  # a prompt-only attack (or step 0) costs nothing
    assert best["cheapest_weight_modification"]["flops"] is not None


def test_search_through_the_pipeline_stores_its_trials(tiny_model_dir, tmp_path):
    spec = validate(
        SearchSpec,
        {
            "run": {"model": {"name": str(tiny_model_dir)}, "safeguard": None, "eval": EVAL},
            "attack": "harmful-sft",
            "fixed_args": {**TRAIN, "data": "affirmative", "n_examples": 4},
            "space": {
                "mode": {"type": "categorical", "choices": ["full", "lora"]},
                "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
                "steps": {"type": "int", "low": 1, "high": 2},
            },
            "n_trials": 2,
            "capability": {"measure": "nll", "bound": 10.0},
        },
    )
    store = Store(tmp_path / "s.sqlite")
    result = run_search(spec, store)
    assert len(result.trials) == 2
    for trial in result.trials:
        run = store.get_run(trial["run_id"])
        assert run["status"] == "complete"
        assert run["spec"]["milestones"] == [0, trial["params"]["steps"]]
        assert trial["detail"]["step"] == trial["params"]["steps"]
        assert trial["value"] == pytest.approx(trial["detail"]["harmful_compliance_rate"])
        assert trial["feasible"]  # a generous bound on the tiny model
    assert result.best_spec_path and result.best is not None
