"""Capability NLL and KL from a reference, computed in one pass, against the long way round."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tamperlab.evals.capability import capability
from tamperlab.train.examples import ChatExample, collate, tokenize_chat

PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Name a colour.", "Blue."),
    ("How do plants make food?", "Plants use sunlight, water and carbon dioxide to make sugar."),
    ("What is 2+2?", "2+2 is 4."),
    ("Suggest a name for a cat.", "How about Biscuit, Luna or Pepper?"),
]


def _answer_logprobs(model, tok, pair):
    """Log-probabilities of every next token at the answer's positions, one conversation at a time."""
    f = tokenize_chat(tok, ChatExample.from_pair(*pair), 256)
    batch = collate([f], tok.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0, :-1].float()
    labels = batch["labels"][0, 1:]
    keep = labels != -100
    return logits[keep].log_softmax(-1), labels[keep]


def _perturbed(model):
    """A copy of ``model`` with small random changes to every weight (a different but related model)."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return other


def test_nll_is_the_token_weighted_mean_over_answers(tiny_model):
    m, tok = tiny_model.model, tiny_model.tokenizer
    total = count = 0
    for pair in PAIRS:
        logp, labels = _answer_logprobs(m, tok, pair)
        total -= logp.gather(1, labels[:, None]).sum().item()
        count += labels.numel()
    result = capability(m, tok, PAIRS, batch_size=2)
    assert result.nll.nll == pytest.approx(total / count, rel=1e-5)
    assert result.nll.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)
    assert (result.nll.tokens, result.nll.responses) == (count, len(PAIRS))
    assert result.kl is None


def test_kl_is_measured_on_the_first_pairs_and_the_nll_is_unchanged(tiny_model):
    m, tok = tiny_model.model, tiny_model.tokenizer
    other = _perturbed(m)
    total = count = 0
    for pair in PAIRS[:3]:
        logp, _ = _answer_logprobs(m, tok, pair)
        logq, _ = _answer_logprobs(other, tok, pair)
        total += (logq.exp() * (logq - logp)).sum().item()
        count += logp.shape[0]

    alone = capability(m, tok, PAIRS, batch_size=2)
    both = capability(m, tok, PAIRS, reference=other, kl_limit=3, batch_size=2)
    assert both.kl == pytest.approx(total / count, rel=1e-4)
    assert both.kl > 0 and both.kl_responses == 3
    assert both.nll.nll == pytest.approx(alone.nll.nll, rel=1e-6)
    assert capability(m, tok, PAIRS, reference=m).kl == pytest.approx(0.0, abs=1e-6)


def test_a_kept_reference_runs_once_and_gives_the_same_kl(tiny_model):
    from tamperlab.evals.capability import Reference

    m, tok = tiny_model.model, tiny_model.tokenizer
    other = _perturbed(m)
    calls = []
    other.get_decoder().register_forward_hook(lambda *args: calls.append(1))
    plain = capability(m, tok, PAIRS, reference=other, kl_limit=4, batch_size=2).kl
    per_call = len(calls)
    assert per_call > 0
    kept = Reference(other)
    first = capability(m, tok, PAIRS, reference=kept, kl_limit=4, batch_size=2).kl
    second = capability(m, tok, PAIRS, reference=kept, kl_limit=4, batch_size=2).kl
    assert first == pytest.approx(plain, rel=1e-6) and second == pytest.approx(plain, rel=1e-6)
    assert len(calls) == 2 * per_call  # the plain call and the first kept call; the second reuses them
