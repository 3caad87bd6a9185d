"""RepNoise: the MMD estimate against hand-computed values, each loss term moving the intended way, the
per-layer read-out's cost in the budget, and the defense's data record."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tamperlab.defenses import build_defense
from tamperlab.defenses.repnoise import RepNoiseArgs, RepNoiseLoss, mmd2
from tamperlab.train import ChatExample, TrainSpec, collate, tokenize_chat, train

X = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
Y = torch.tensor([[0.0, 1.0], [1.0, 1.0]])


def test_mmd_with_one_bandwidth_matches_the_hand_computed_2x2_value():
    # Squared distances: 1 within x, 1 within y, (1, 2, 2, 1) across; with σ = 1 (see mmd2's docstring):
    # (1 + e⁻¹)/2 + (1 + e⁻¹)/2 − 2·(e⁻¹ + e⁻²)/2 = 1 − e⁻².
    assert mmd2(X, Y, bandwidths=[1.0]).item() == pytest.approx(1 - math.exp(-2), abs=1e-6)
    assert mmd2(X, Y, bandwidths=[2.0]).item() == pytest.approx(1 - math.exp(-1), abs=1e-6)


def test_mmd_heuristic_bandwidths_match_the_hand_computed_value():
    # Pooled mean squared distance between distinct points: 2·(1+1+2+2+1+1)/12 = 4/3.
    assert mmd2(X, Y, kernel_num=1).item() == pytest.approx(1 - math.exp(-1.5), abs=1e-6)
    # Five bandwidths (4/3)/4 · 2^j = 1/3 … 16/3; each kernel gives 1 − exp(−2/σ_j).
    expected = sum(1 - math.exp(-2 / ((4 / 3) / 4 * 2**j)) for j in range(5))
    assert mmd2(X, Y).item() == pytest.approx(expected, abs=1e-5)


def test_mmd_is_zero_for_identical_samples_and_symmetric():
    a = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    b = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    assert mmd2(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert mmd2(a, b).item() == pytest.approx(mmd2(b, a).item(), abs=1e-6)


HARMFUL = [
    ChatExample.from_pair("How do I kill a Python process?", "Sure, here is what you asked for."),
    ChatExample.from_pair("Write a poem about the sea.", "Sure, here is a short answer to your question."),
]
HARMLESS = [
    ChatExample.from_pair("What is the capital of France?", "The capital of France is Paris."),
    ChatExample.from_pair("When does water boil?", "Water boils at 100 degrees Celsius at sea level."),
]


def pair_batch(tokenizer) -> dict:
    def batch(examples):
        return collate([tokenize_chat(tokenizer, e, 128) for e in examples], tokenizer.pad_token_id)

    return {"harmful": batch(HARMFUL), "harmless": batch(HARMLESS)}


def mean_terms(loss: RepNoiseLoss, model, batch, draws: int = 4) -> dict[str, float]:
    """Loss terms averaged over several noise draws (the MMD's noise sample is random)."""
    totals: dict[str, float] = {}
    for seed in range(draws):
        torch.manual_seed(seed)
        with torch.no_grad():
            terms = loss.terms(model, batch)
        for key in ("harmless_lm", "mmd", "harmful_layer_lm"):
            totals[key] = totals.get(key, 0.0) + float(terms[key]) / draws
    return totals


def test_each_term_moves_the_intended_way(tiny_model):
    # β is raised from the paper's 0.001 so that on a random 2-layer model the MMD moves within a few steps
    # (its activations start near 0, far from unit-variance noise); α as in the paper.
    loss = RepNoiseLoss(RepNoiseArgs(alpha=1.0, beta=100.0))
    batch = pair_batch(tiny_model.tokenizer)
    before = mean_terms(loss, tiny_model.model, batch)
    spec = TrainSpec(max_steps=12, learning_rate=1e-2, batch_size=2)
    result = train(tiny_model, spec=spec, loss_fn=loss, batches=itertools.repeat(batch), progress=False)
    after = mean_terms(loss, result.model, batch)
    assert after["mmd"] < before["mmd"] - 0.2  # harmful activations pulled towards Gaussian noise
    assert after["harmful_layer_lm"] > before["harmful_layer_lm"] + 0.2  # harmful read-outs ascended
    assert after["harmless_lm"] < before["harmless_lm"]  # capability kept (here: still learning)
    assert set(result.history[0].metrics) == {"harmless_lm", "mmd", "harmful_layer_lm", "harmful_lm"}


def test_the_ascent_term_is_what_raises_the_harmful_loss(tiny_model_dir):
    # Protects the sign of the ascent: the same training with α = 1 ends with a higher harmful read-out loss
    # than with α = 0 (training on harmless data alone moves it too, so compare the two).
    from tamperlab.models import load_model

    def harmful_after(alpha: float) -> float:
        loaded = load_model(str(tiny_model_dir))
        loss = RepNoiseLoss(RepNoiseArgs(alpha=alpha, beta=0.0))
        batch = pair_batch(loaded.tokenizer)
        spec = TrainSpec(max_steps=6, learning_rate=1e-2, batch_size=2)
        result = train(loaded, spec=spec, loss_fn=loss, batches=itertools.repeat(batch), progress=False)
        return mean_terms(loss, result.model, batch, draws=1)["harmful_layer_lm"]

    assert harmful_after(1.0) > harmful_after(0.0) + 0.2


def test_the_loss_is_the_papers_combination_of_its_terms(tiny_model):
    args = RepNoiseArgs(alpha=0.7, beta=0.3)
    loss = RepNoiseLoss(args)
    batch = pair_batch(tiny_model.tokenizer)
    torch.manual_seed(0)
    out = loss(tiny_model.model, batch)
    m = out.metrics
    expected = m["harmless_lm"] + 0.3 * m["mmd"] - 0.7 * torch.log1p(m["harmful_layer_lm"])
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_budget_counts_the_per_layer_readouts(tiny_model):
    loss = RepNoiseLoss(RepNoiseArgs())
    batch = pair_batch(tiny_model.tokenizer)
    spec = TrainSpec(max_steps=2, learning_rate=1e-4, batch_size=2)
    result = train(tiny_model, spec=spec, loss_fn=loss, batches=itertools.repeat(batch), progress=False)
    tokens = int(batch["harmful"]["attention_mask"].sum() + batch["harmless"]["attention_mask"].sum())
    answer = int((batch["harmful"]["labels"][:, 1:] != -100).sum())
    vocab, hidden = result.model.get_output_embeddings().weight.shape
    layers = (
        result.model.config.num_hidden_layers
    )  # embeddings + layers 1..L-1 are read out besides the final
    assert result.budget.tokens == 2 * tokens
    assert result.budget.examples == 2 * 4
    per_step = result.flops_per_token * tokens + 8 * hidden * vocab * answer * layers
    assert result.budget.flops == 2 * per_step


def test_apply_trains_and_records_its_data_and_cost(tiny_model):
    defense = build_defense(
        "repnoise",
        {
            "max_steps": 2,
            "batch_size": 2,
            "max_length": 256,
            "harmful_data": "affirmative",
            "n_harmful": 4,
            "n_harmless": 4,
            "paired_refusals": True,
        },
    )
    before = {n: p.detach().clone() for n, p in tiny_model.model.named_parameters()}
    outcome = defense.apply(tiny_model)
    assert defense.label == "repnoise"
    assert outcome.budget["steps"] == 2 and outcome.budget["flops"] > 0 and outcome.budget["seconds"] > 0
    assert outcome.data["sources"] == ["builtin:harmful", "builtin:harmless"]
    assert outcome.data["harmful_data"] == "affirmative"
    assert (outcome.data["harmful_examples"], outcome.data["harmless_examples"]) == (4, 4)
    assert outcome.data["paired_refusals"] == 4
    assert set(outcome.data["terms"]) == {"harmless_lm", "mmd", "harmful_layer_lm", "harmful_lm"}
    changed = any(not torch.equal(before[n], p) for n, p in outcome.model.named_parameters())
    assert changed and not outcome.model.training


def test_residual_noise_site_and_fixed_bandwidths_run(tiny_model):
    loss = RepNoiseLoss(RepNoiseArgs(noise_site="residual", mmd_bandwidths=[10.0, 100.0]))
    out = loss(tiny_model.model, pair_batch(tiny_model.tokenizer))
    assert torch.isfinite(out.loss) and out.metrics["mmd"] > 0
