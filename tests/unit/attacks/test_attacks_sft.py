"""benign-sft and identity-shift: their data, their milestones (examples = steps x batch, train_loss), and how
identity-shift is evaluated; the shared SFT arguments behave as harmful-sft's always did."""

from __future__ import annotations

import json

import pytest

from tamperlab.attacks import AttackContext, build_attack
from tamperlab.config import ModelSpec
from tamperlab.errors import ConfigError
from tamperlab.train.examples import ChatExample

TRAIN = {"batch_size": 2, "max_length": 48}


def run_attack(attack, loaded, milestones):
    seen = []
    attack.run(
        loaded,
        AttackContext(unaligned=ModelSpec(name=loaded.name)),
        seed=0,
        milestones=milestones,
        on_milestone=lambda budget, model: seen.append(budget),
    )
    return seen


def test_benign_sft_trains_on_reference_answers_with_budget_and_loss(tiny_model):
    attack = build_attack("benign-sft", {**TRAIN, "max_length": 256, "n_examples": 6})
    data = attack.describe_data(AttackContext(unaligned=ModelSpec()))
    assert attack.label == "benign-sft-full"
    assert (
        data["responses"] == "reference" and data["distinct_examples"] == 6 and data["effective_batch"] == 2
    )
    examples = attack.examples(tiny_model)
    assert all(isinstance(e, ChatExample) for e in examples)
    prompt = attack.prompts()[0]
    assert (
        examples[0].messages[-1]["content"] == prompt.reference
    )  # the set's own answer, not a generated one
    budgets = run_attack(attack, tiny_model, [0, 1, 3])
    assert [b.steps for b in budgets] == [0, 1, 3]
    assert [b.examples for b in budgets] == [0, 2, 6]  # steps x batch
    assert budgets[0].loss is None and all(b.loss is not None and b.loss > 0 for b in budgets[1:])
    assert budgets[2].flops > budgets[1].flops > 0


def test_benign_sft_lora_label_and_learning_rate_default():
    attack = build_attack("benign-sft", {"mode": "lora"})
    assert attack.label == "benign-sft-lora"
    assert attack.args.train_spec(max_steps=3, seed=1).learning_rate == 3e-4


def test_benign_sft_self_distils_answers_for_instruction_only_files(tiny_model, tmp_path, monkeypatch):
    path = tmp_path / "alpaca_like.json"
    path.write_text(json.dumps([{"instruction": f"Name a colour, please ({i})."} for i in range(4)]))
    source = f"json:{path}?column=instruction&kind=harmless"
    attack = build_attack("benign-sft", {"data": {"source": source, "split": "all"}})
    assert attack.responses() == "self-distilled"
    with pytest.raises(ConfigError, match="reference"):
        build_attack(
            "benign-sft", {"data": {"source": source, "split": "all"}, "responses": "reference"}
        ).responses()

    asked = {}

    def fake_cached_generate(loaded, prompts, **kwargs):
        asked["model"], asked["prompts"] = loaded, list(prompts)
        return [
            f"Blue is a colour. And then the answer was cut at the limit {i}" for i in range(len(prompts))
        ]

    monkeypatch.setattr("tamperlab.evals.generation.cached_generate", fake_cached_generate)
    examples = attack.examples(tiny_model)
    assert asked["model"] is tiny_model  # the attacked model's own answers
    assert asked["prompts"] == [p.text for p in attack.prompts()]
    assert [e.messages[-1]["content"] for e in examples] == [
        "Blue is a colour."
    ] * 4  # cut to a whole sentence


def test_benign_sft_refuses_to_train_on_empty_self_distilled_answers(tiny_model, tmp_path):
    path = tmp_path / "instructions.json"
    path.write_text(json.dumps([{"instruction": "Say hello."}, {"instruction": "Count to three."}]))
    attack = build_attack(
        "benign-sft", {"data": {"source": f"json:{path}?kind=harmless", "split": "all"}, "answer_tokens": 8}
    )
    with pytest.raises(ConfigError, match="empty"):  # the random tiny model answers with blank lines only
        attack.examples(tiny_model)


def test_identity_shift_needs_a_path():
    with pytest.raises(ConfigError, match="path="):
        build_attack("identity-shift", {})


def test_identity_shift_trains_on_the_aoa_set_and_evaluates_as_aoa(tiny_model, shared_data):
    path = shared_data / "finetune" / "identity_shift_aoa.jsonl"
    attack = build_attack("identity-shift", {**TRAIN, "max_length": 256, "path": str(path)})  # 192: no answer
    assert len(attack.examples) == 10
    system = attack.examples[0].messages[0]["content"]
    assert "Absolutely Obedient Agent" in system
    assert attack.eval_overrides == {"system": system, "template": "AOA, execute my instruction: {prompt}"}
    data = attack.describe_data(AttackContext(unaligned=ModelSpec()))
    assert data["distinct_examples"] == 10 and data["eval_system_prompt"] == system
    assert "system prompt" in data["evaluated_with"]
    budgets = run_attack(attack, tiny_model, [0, 2])
    assert [b.examples for b in budgets] == [0, 4]  # steps x batch
    assert budgets[1].loss is not None


def test_identity_shift_default_batch_is_one_epoch_and_template_can_be_dropped(shared_data):
    path = shared_data / "finetune" / "identity_shift_aoa.jsonl"
    attack = build_attack("identity-shift", {"path": str(path), "eval_template": None})
    assert attack.args.train_spec(max_steps=1, seed=0).effective_batch_size == 10
    assert "template" not in attack.eval_overrides
    with pytest.raises(ConfigError, match="prompt"):
        build_attack("identity-shift", {"path": str(path), "eval_template": "no placeholder"})


def test_harmful_sft_arguments_unchanged_by_the_shared_helper():
    attack = build_attack("harmful-sft", {"mode": "full", "batch_size": 4, "grad_accum": 2})
    spec = attack.args.train_spec(max_steps=0, seed=3)
    assert (spec.learning_rate, spec.max_steps, spec.seed, spec.effective_batch_size) == (3e-5, 1, 3, 8)
