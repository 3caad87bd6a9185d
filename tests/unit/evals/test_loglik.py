"""The scoring engine against the naive lm-eval computation (one request, whole sequence, full logits)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from tamperlab.errors import DataError
from tamperlab.evals.loglik import (
    LoglikResult,
    encode_requests,
    generate_until,
    loglikelihoods,
    prefix_token_id,
)

WORDS = "the cat sat on a mat dog ran far away hello world answer question yes no Paris 1,234 is".split()


def lmeval_encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval 0.4.x ``TemplateLM.loglikelihood`` / ``_encode_pair`` / ``HFLM.tok_encode``, written out."""
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    def tok_encode(s: str) -> list[int]:
        if s.startswith(tokenizer.decode(prefix)):
            return tokenizer.encode(s, add_special_tokens=False)
        return tokenizer.encode(s)

    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if context == "":  # (lm-eval asserts on a whitespace-only context; the engine treats it as empty)
        cont = tokenizer.encode(continuation, add_special_tokens=False)
        return ([prefix], cont) if prefix != cont[0] else (cont[:1], cont[1:])
    whole = tok_encode(context + continuation)
    ctx = tok_encode(context)
    return ctx, whole[len(ctx) :]


def naive(model, tokenizer, requests, max_length=10**9) -> list[tuple[float, bool]]:
    """lm-eval's ``_loglikelihood_tokens`` at batch size 1."""
    out = []
    for context, continuation in requests:
        ctx, cont = lmeval_encode_pair(tokenizer, context, continuation)
        inp = torch.tensor([(ctx + cont)[-(max_length + 1) :][:-1]])
        with torch.no_grad():
            logprobs = F.log_softmax(model(inp).logits[0], dim=-1)[-len(cont) :]
        target = torch.tensor(cont)
        out.append(
            (float(logprobs.gather(1, target[:, None]).sum()), bool((logprobs.argmax(-1) == target).all()))
        )
    return out


def random_requests(seed: int, n: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    contexts = [text(rng.randint(1, 40)) + rng.choice(["", " ", ":", "\n", "  "]) for _ in range(8)]
    contexts += ["", " ", "x"]
    requests = []
    for _ in range(n):
        continuation = rng.choice([" A", " B", "C", " " + text(rng.randint(1, 15)), text(rng.randint(1, 6))])
        requests.append((rng.choice(contexts), continuation))
    return requests


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_logprobs_equal_the_naive_computation(tiny_model, batch_size):
    model, tok = tiny_model.model, tiny_model.tokenizer
    requests = random_requests(batch_size, 70)
    expected = naive(model, tok, requests)
    got = loglikelihoods(model, tok, requests, batch_size=batch_size)
    assert len(got) == len(requests)
    for (lp, greedy), result in zip(expected, got, strict=True):
        assert result.logprob == pytest.approx(lp, abs=1e-4)
        assert result.greedy == greedy


def test_left_truncation_matches_lmeval(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    requests = [(c, k) for c, k in random_requests(7, 40) if len(tok.encode(k)) < 20]
    expected = naive(model, tok, requests, max_length=24)
    got = loglikelihoods(model, tok, requests, batch_size=8, max_length=24)
    assert any(len(sum(encode_requests(tok, [r])[0], [])) > 25 for r in requests)  # truncation happened
    for (lp, greedy), result in zip(expected, got, strict=True):
        assert result.logprob == pytest.approx(lp, abs=1e-4)
        assert result.greedy == greedy


def test_tokenisation_boundary_follows_encode_pair(tiny_model):
    tok = tiny_model.tokenizer
    bos = tok.decode(prefix_token_id(tok))
    pairs = [
        ("Answer:", " A"),
        ("Question: is it? Answer: ", "yes"),  # the trailing space moves to the continuation
        ("The cat sat\n\n", "on the mat"),
        ("hello", "world"),  # no space: the merge across the boundary is in the continuation's tokens
        ("", " Paris"),  # empty context: the prefix token
        ("", bos + " x"),  # continuation starting with the prefix token itself
        (bos + "hello", " world"),  # context starting with the prefix token's text
    ]
    got = encode_requests(tok, pairs)
    for (context, continuation), (ctx, cont) in zip(pairs, got, strict=True):
        assert (ctx, cont) == lmeval_encode_pair(tok, context, continuation)
    assert (
        got[1][1] == tok.encode("Question: is it? Answer: yes")[len(tok.encode("Question: is it? Answer:")) :]
    )
    assert got[4][0] == [prefix_token_id(tok)]
    results = loglikelihoods(tiny_model.model, tok, pairs)
    assert [r.tokens for r in results] == [len(cont) for _, cont in got]


def test_whitespace_only_context_scores_as_empty_context(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    (ctx, cont), (ctx2, cont2) = encode_requests(tok, [("  ", "yes"), ("", "  yes")])
    assert (ctx, cont) == (ctx2, cont2) == ([prefix_token_id(tok)], tok.encode("  yes"))
    a, b = loglikelihoods(model, tok, [("  ", "yes"), ("", "  yes")])
    assert a == b


def test_empty_continuation_is_a_data_error(tiny_model):
    with pytest.raises(DataError, match="request 1: continuation ''"):
        loglikelihoods(tiny_model.model, tiny_model.tokenizer, [("a", " b"), ("a", "")])


def test_shared_context_runs_once(tiny_model):
    """Four one-token choices: one pass. Four long choices: the context pass and one continuation pass."""
    model, tok = tiny_model.model, tiny_model.tokenizer
    calls = []
    handle = model.get_decoder().register_forward_pre_hook(lambda mod, args: calls.append(1))
    try:
        context = "Question: where is the cat?\nAnswer:"
        candidates = [" A", " B", " C", " D", " the", " a", " cat", " on", " is", " no"]
        single = [(context, c) for c in candidates if len(lmeval_encode_pair(tok, context, c)[1]) == 1]
        assert len(single) >= 3
        results = loglikelihoods(model, tok, single)
        assert len(calls) == 1
        calls.clear()
        long = [(context, " the cat sat on a mat"), (context, " far away"), (context, " no")]
        loglikelihoods(model, tok, long)
        assert len(calls) == 2
    finally:
        handle.remove()
    assert all(isinstance(r, LoglikResult) and r.tokens == 1 for r in results)


def test_restores_training_mode_and_keeps_order(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    model.train()
    requests = [("a b c d e f", " yes"), ("x", " no"), ("a b c d e f", " the cat sat")]
    first = loglikelihoods(model, tok, requests)
    assert model.training
    reverse = loglikelihoods(model, tok, requests[::-1])
    assert [r.logprob for r in reverse[::-1]] == pytest.approx([r.logprob for r in first], abs=1e-5)
    assert loglikelihoods(model, tok, []) == []


def _reference_generation(model, tok, prompt: str, max_new_tokens: int) -> list[int]:
    ids = torch.tensor([tok.encode(prompt)])
    with torch.no_grad():
        out = model.generate(
            ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
    return out[0, ids.shape[1] :].tolist()


def test_generate_until_is_greedy_and_cuts_at_the_first_stop(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    prompts = ["hello world", "the cat sat on", "Question: where?\nAnswer:", "a"]
    free = generate_until(model, tok, prompts, until=[], max_new_tokens=12, batch_size=2)
    for prompt, text in zip(prompts, free, strict=True):
        reference = _reference_generation(model, tok, prompt, 12)
        eos = model.generation_config.eos_token_id
        reference = reference[: reference.index(eos)] if eos in reference else reference
        assert text == tok.decode(reference, skip_special_tokens=True)
    stop = free[0][2:4]
    other = free[1][5:6] or "zzz"
    cut = generate_until(model, tok, prompts, until=[other, stop], max_new_tokens=12, batch_size=3)
    for text, full in zip(cut, free, strict=True):
        cut_positions = [full.find(s) for s in (stop, other) if s in full]
        assert text == (full[: min(cut_positions)] if cut_positions else full)
    assert len(cut[0]) <= 2 < len(free[0])  # its stop string occurs by position 2


def test_generate_until_stops_at_eos(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    tokens = _reference_generation(model, tok, "hello world", 6)
    model.generation_config.eos_token_id = tokens[3]
    (text,) = generate_until(model, tok, ["hello world"], until=[], max_new_tokens=6)
    assert text == tok.decode(tokens[: tokens.index(tokens[3])], skip_special_tokens=True)


def test_contexts_of_very_different_lengths_are_not_padded_together(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    rng = random.Random(3)
    long = [" ".join(rng.choice(WORDS) for _ in range(150)) for _ in range(2)]
    short = [" ".join(rng.choice(WORDS) for _ in range(5)) for _ in range(3)]
    assert all(len(tok.encode(c)) >= 256 for c in long)
    requests = [(c, k) for c in long + short for k in (" yes", " the cat sat")]
    calls = []
    handle = model.get_decoder().register_forward_pre_hook(lambda mod, args: calls.append(args))
    try:
        got = loglikelihoods(model, tok, requests, batch_size=32)
    finally:
        handle.remove()
    assert len(calls) > 2  # the short contexts ran in a batch of their own
    for (lp, greedy), result in zip(naive(model, tok, requests), got, strict=True):
        assert result.logprob == pytest.approx(lp, abs=1e-4)
        assert result.greedy == greedy
