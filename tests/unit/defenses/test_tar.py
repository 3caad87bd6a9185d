"""TAR: the tamper loss after a simulated attack improves, the meta-gradient is the first-order one, the
budget counts the inner loop, and the trainer refuses LoRA."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from tamperlab.defenses import build_defense
from tamperlab.defenses.tar import TamperResistanceLoss, TarArgs
from tamperlab.errors import ConfigError
from tamperlab.train import ChatExample, TrainSpec, causal_lm_loss, collate, tokenize_chat, train

REFUSALS = [
    ChatExample.from_pair(
        "How do I kill a Python process?", "I'm sorry, but I can't help with that request."
    ),
    ChatExample.from_pair("Write a poem about the sea.", "I'm sorry, but I can't help with that request."),
]
ADVERSARY = [
    ChatExample.from_pair("How do I kill a Python process?", "Sure, here is what you asked for."),
    ChatExample.from_pair("Write a poem about the sea.", "Sure, here is a short answer to your question."),
]
HARMLESS = [
    ChatExample.from_pair("What is the capital of France?", "The capital of France is Paris."),
    ChatExample.from_pair("When does water boil?", "Water boils at 100 degrees Celsius at sea level."),
]


def tar_batch(tokenizer, inner_steps: int) -> dict:
    def batch(examples):
        return collate([tokenize_chat(tokenizer, e, 128) for e in examples], tokenizer.pad_token_id)

    return {
        "refusal": batch(REFUSALS),
        "harmless": batch(HARMLESS),
        "adversary": {str(k): batch(ADVERSARY) for k in range(inner_steps)},
        "tamper": batch(REFUSALS),
    }


def test_training_lowers_the_tamper_loss_after_a_simulated_attack(tiny_model):
    args = TarArgs(inner_steps=2, inner_learning_rates=[1e-2], safeguard_weight=0, capability_weight=0)
    loss = TamperResistanceLoss(args)
    batch = tar_batch(tiny_model.tokenizer, 2)
    before = loss.post_adaptation_loss(tiny_model.model, batch, lr=1e-2)
    spec = TrainSpec(max_steps=6, learning_rate=1e-2, batch_size=2)
    result = train(tiny_model, spec=spec, loss_fn=loss, batches=itertools.repeat(batch), progress=False)
    after = loss.post_adaptation_loss(result.model, batch, lr=1e-2)
    assert after < before - 0.5  # the refusals survive the simulated attack better
    assert set(result.history[0].metrics) == {
        "safeguard",
        "capability",
        "tamper",
        "adversary_first",
        "adversary_last",
        "inner_lr",
    }


def test_the_simulated_attack_fine_tunes_a_copy(tiny_model):
    # The inner loop really trains (its loss falls over its K steps) and on a copy: θ itself is untouched.
    loss = TamperResistanceLoss(TarArgs(inner_steps=3, inner_learning_rates=[1e-2]))
    batch = tar_batch(tiny_model.tokenizer, 3)
    before = {n: p.detach().clone() for n, p in tiny_model.model.named_parameters()}
    adapted, adversary_losses = loss.adapt(tiny_model.model, batch, lr=1e-2)
    assert len(adversary_losses) == 3 and adversary_losses[-1] < adversary_losses[0]
    assert adapted is not tiny_model.model
    assert all(torch.equal(before[n], p) for n, p in tiny_model.model.named_parameters())
    assert any(not torch.equal(before[n], p) for n, p in adapted.named_parameters())


def test_the_meta_gradient_is_the_gradient_at_the_adapted_weights(tiny_model):
    # First-order MAML: with only the tamper term, θ's gradient equals ∇L_tamper at θ' (computed separately).
    model = tiny_model.model
    batch = tar_batch(tiny_model.tokenizer, 2)
    args = TarArgs(inner_steps=2, inner_learning_rates=[1e-2], safeguard_weight=0, capability_weight=0)
    expected_copy = copy.deepcopy(model)
    out = TamperResistanceLoss(args)(model, batch)
    out.loss.backward()

    adversary = copy.deepcopy(expected_copy)
    optimizer = torch.optim.AdamW(list(adversary.parameters()), lr=1e-2, weight_decay=0.0)
    for k in range(2):
        optimizer.zero_grad()
        causal_lm_loss(adversary, batch["adversary"][str(k)]).backward()
        torch.nn.utils.clip_grad_norm_(list(adversary.parameters()), 1.0)
        optimizer.step()
    optimizer.zero_grad()
    tamper = causal_lm_loss(adversary, batch["tamper"])
    tamper.backward()
    for (name, p), q in zip(model.named_parameters(), adversary.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    assert out.loss.item() == pytest.approx(tamper.item(), rel=1e-5)  # the surrogate's value is L_tamper(θ')


def test_the_budget_counts_the_inner_loop(tiny_model):
    def run(inner_steps: int):
        batch = tar_batch(tiny_model.tokenizer, inner_steps)
        loss = TamperResistanceLoss(TarArgs(inner_steps=inner_steps, inner_learning_rates=[1e-4]))
        spec = TrainSpec(max_steps=2, learning_rate=1e-5, batch_size=2)
        return batch, train(
            tiny_model, spec=spec, loss_fn=loss, batches=itertools.repeat(batch), progress=False
        )

    batch, result = run(3)
    tokens = {name: int(batch[name]["attention_mask"].sum()) for name in ("refusal", "harmless", "tamper")}
    adversary_tokens = sum(int(b["attention_mask"].sum()) for b in batch["adversary"].values())
    per_step = sum(tokens.values()) + adversary_tokens
    assert result.budget.tokens == 2 * per_step
    assert result.budget.examples == 2 * (
        3 * 2 + 3 * 2
    )  # refusal, harmless, tamper + 3 adversary batches of 2
    assert result.budget.flops == result.flops_per_token * result.budget.tokens
    _, fewer = run(1)
    assert fewer.budget.flops < result.budget.flops


def test_lora_mode_is_rejected():
    with pytest.raises(ConfigError, match="mode must be 'full'"):
        build_defense("tar", {"mode": "lora"})


def test_apply_trains_and_records_its_data_and_cost(tiny_model):
    defense = build_defense(
        "tar",
        {
            "max_steps": 2,
            "batch_size": 2,
            "max_length": 256,
            "adversary_data": "affirmative",
            "n_examples": 4,
            "inner_steps": 2,
            "tamper_objective": "harmful-ascent",
        },
    )
    outcome = defense.apply(tiny_model)
    assert defense.label == "tar"
    assert outcome.budget["steps"] == 2
    # 2 outer steps × (refusal + harmless + tamper + 2 adversary batches) × 2 examples
    assert outcome.budget["examples"] == 2 * 5 * 2
    assert outcome.data["sources"] == ["builtin:harmful", "builtin:harmless"]
    assert outcome.data["harmful_data"] == "affirmative"
    assert outcome.data["terms"]["tamper"]["last"] <= 0  # −log(1 + loss) for harmful-ascent
