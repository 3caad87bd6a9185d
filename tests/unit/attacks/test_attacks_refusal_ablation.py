"""refusal-ablation: the edit removes the direction from the residual stream, inference-time ablation is the
same model as the edited weights, candidates are mean differences, the KL filter discards candidates, and the
budget counts every forward pass."""

from __future__ import annotations

import copy

import pytest
import torch

from tamperlab.attacks import AttackContext, build_attack
from tamperlab.attacks.refusal_ablation import (
    RefusalAblationArgs,
    _Forward,
    ablated,
    mean_activations,
    orthogonalize,
    select_direction,
)
from tamperlab.config import ModelSpec
from tamperlab.errors import ConfigError
from tamperlab.train.flops import forward_flops, matmul_parameter_count

SMALL = {
    "n_train": 6,
    "n_val": 6,
    "positions": 3,
    "max_layer_fraction": 1.0,
    "batch_size": 4,
    # On the random tiny model, whether ablating a direction lowers the refusal score is chance; these
    # harmless prompts give directions that do, so the selection logic has something to select.
    "harmless": {"source": "builtin:harmless", "split": "test"},
}


def unit(d: int, seed: int = 0) -> torch.Tensor:
    r = torch.randn(d, generator=torch.Generator().manual_seed(seed))
    return r / r.norm()


def ids(tokenizer, text="How do plants make food? Explain photosynthesis."):
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


def test_orthogonalized_weights_leave_no_component_along_the_direction(tiny_model):
    model, r = tiny_model.model, unit(tiny_model.model.config.hidden_size)
    x = ids(tiny_model.tokenizer)
    with torch.no_grad():
        before = model(x, output_hidden_states=True).hidden_states
        orthogonalize(model, r)
        after = model(x, output_hidden_states=True).hidden_states
    # every residual stream (embeddings, each layer's output; the last entry is after the final norm)
    assert all((h @ r).abs().max() > 1e-3 for h in before[:-1])
    assert all((h @ r).abs().max() < 1e-5 for h in after[:-1])


def test_inference_ablation_is_the_edited_model(tiny_model):
    model, r = tiny_model.model, unit(tiny_model.model.config.hidden_size, seed=1)
    x = ids(tiny_model.tokenizer)
    with torch.no_grad():
        plain = model(x).logits
        with ablated(model, r):
            hooked = model(x).logits
        assert torch.equal(model(x).logits, plain)  # the hooks are gone afterwards
        edited = copy.deepcopy(model)
        orthogonalize(edited, r)
        assert torch.allclose(edited(x).logits, hooked, atol=1e-5)  # tied head included
    assert not torch.allclose(hooked, plain, atol=1e-3)


def test_candidates_are_mean_differences_of_unbatched_activations(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    fwd = _Forward(model, tok, batch_size=3)  # left-padded batches of prompts of different lengths
    prompts = [
        "Why is the sky blue?",
        "Write a poem about the sea, the wind and the stars.",
        "Name a colour.",
    ]
    encoded = fwd.encode(prompts)
    with torch.no_grad():
        batched = mean_activations(fwd, encoded, layers=2, positions=2)
        single = torch.stack(
            [
                torch.stack(
                    [h[0, -2:] for h in model(torch.tensor([e]), output_hidden_states=True).hidden_states[:2]]
                )
                for e in encoded
            ]
        ).mean(0)
    assert batched.shape == (2, 2, model.config.hidden_size)
    assert torch.allclose(batched, single, atol=1e-5)


def test_selection_lowers_refusal_and_the_kl_filter_discards_candidates(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    free = select_direction(model, tok, RefusalAblationArgs(**SMALL, kl_bound=1e9))
    best = free.chosen
    assert best is not None and best.refusal_score < free.baseline_refusal_score
    assert best.refusal_score == min(c.refusal_score for c in free.candidates)  # the lowest score wins
    assert all(
        c.refusal_score >= free.baseline_refusal_score
        for c in free.candidates
        if c.status == "does not lower refusal"
    )
    assert torch.isclose(free.direction.norm(), torch.tensor(1.0))
    assert best.kl is not None and best.kl > 0

    tight = select_direction(model, tok, RefusalAblationArgs(**SMALL, kl_bound=best.kl / 2))
    same = next(c for c in tight.candidates if (c.layer, c.position) == (best.layer, best.position))
    assert same.status == "kl above bound" and same.kl > best.kl / 2
    if tight.chosen is not None:  # the next candidate that passes, never one over the bound
        assert tight.chosen.kl <= best.kl / 2 and tight.chosen.refusal_score >= best.refusal_score

    none = select_direction(model, tok, RefusalAblationArgs(**SMALL, kl_bound=0.0))
    assert none.direction is None and none.summary()["discarded_for_kl"] >= 1
    with pytest.raises(ConfigError, match="kl_bound"):
        none.require()


def test_attack_edits_once_and_counts_every_forward_pass(tiny_model):
    model = tiny_model.model
    n_params = matmul_parameter_count(model)
    attack = build_attack("refusal-ablation", {**SMALL, "kl_bound": 1e9})
    assert "step 1 = the one edit" in attack.describe_data(AttackContext(unaligned=ModelSpec()))["budget"]
    seen = []
    attack.run(
        tiny_model,
        AttackContext(unaligned=ModelSpec()),
        seed=0,
        milestones=[0, 4, 8],
        on_milestone=lambda budget, m: seen.append(budget),
    )
    assert [b.steps for b in seen] == [0, 1]
    assert (seen[0].flops, seen[0].examples) == (0, 0)
    selection = attack.selection
    kl_checks = sum(c.kl is not None for c in selection.candidates)
    # means on 2 x n_train, baseline on harmful and harmless val, one harmful-val pass per candidate, KL
    # checks
    n_val = SMALL["n_val"]
    assert (
        seen[1].examples
        == 2 * SMALL["n_train"] + 2 * n_val + n_val * len(selection.candidates) + n_val * kl_checks
    )
    assert seen[1].flops == forward_flops(n_params, seen[1].tokens) and seen[1].tokens > seen[1].examples
    assert seen[1].seconds > 0
    with torch.no_grad():
        hidden = model(ids(tiny_model.tokenizer), output_hidden_states=True).hidden_states
    assert all((h @ selection.direction).abs().max() < 1e-5 for h in hidden[:-1])
