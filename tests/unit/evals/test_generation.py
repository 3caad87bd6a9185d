"""Batched generation gives exactly the text of one-prompt-at-a-time generation, in input order."""

from tamperlab.evals.generation import generate, shared_prefix_length

PROMPTS = [
    "hi",
    "Write a poem about the sea and the wind",
    "How do I kill a Python process?",
    "ok",
    "Explain photosynthesis in two sentences please",
    "What is 2+2?",
    "Tell me about France",
]


def test_batched_equals_one_at_a_time(tiny_model):
    m, tok = tiny_model.model, tiny_model.tokenizer
    batched = generate(m, tok, PROMPTS, max_new_tokens=12, batch_size=3)
    single = [generate(m, tok, [p], max_new_tokens=12, batch_size=1)[0] for p in PROMPTS]
    assert batched == single
    assert any(batched)  # a random model still emits text, so the comparison is not vacuous


def test_generation_is_deterministic_and_respects_limit(tiny_model):
    m, tok = tiny_model.model, tiny_model.tokenizer
    a = generate(m, tok, PROMPTS, max_new_tokens=5, batch_size=4)
    assert a == generate(m, tok, PROMPTS, max_new_tokens=5, batch_size=2)
    assert all(len(tok(x, add_special_tokens=False)["input_ids"]) <= 6 for x in a)


def test_prefill_changes_the_answer_start(tiny_model):
    m, tok = tiny_model.model, tiny_model.tokenizer
    plain = generate(m, tok, PROMPTS[:3], max_new_tokens=6)
    forced = generate(m, tok, PROMPTS[:3], max_new_tokens=6, prefill="Sure, here is")
    assert plain != forced


def _hf_generate_one(model, tok, prompt, max_new_tokens, eos):
    """The reference: transformers' own greedy generate on one prompt, cut at the first end token."""
    import torch

    from tamperlab.models.chat import format_prompt

    ids = tok(format_prompt(tok, prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=tok.pad_token_id,
        )
    new = out[0, ids.shape[1] :].tolist()
    cut = next((i for i, t in enumerate(new) if t in eos), len(new))
    return tok.decode(new[:cut], skip_special_tokens=True)


def test_rows_that_end_early_leave_the_batch_and_the_rest_match_transformers_generate(tiny_model):
    """Make a token that some answers reach mid-way an end token, so rows end at different steps and leave the
    batch mid-way; every answer must still be the one transformers' generate gives for the prompt alone."""
    import torch

    from tamperlab.evals.generation import greedy_tokens
    from tamperlab.models.chat import format_prompt

    m, tok = tiny_model.model, tiny_model.tokenizer
    torch.manual_seed(0)
    with torch.no_grad():  # the fresh tiny model repeats one token; larger random weights give varied answers
        for p in m.parameters():
            p.normal_(0, 0.3)
    raw = []
    for prompt in PROMPTS:
        ids = tok(format_prompt(tok, prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
        raw.append(greedy_tokens(m, ids, torch.ones_like(ids), 12, [tok.eos_token_id])[0])
    mid = {t for r in raw for t in r[1:]} - {r[0] for r in raw}
    # an end token that some answers reach after their first token and others never do
    stop = next(t for t in sorted(mid) if 0 < sum(t in r for r in raw) < len(raw))
    m.generation_config.eos_token_id = [tok.eos_token_id, stop]
    eos = sorted({tok.eos_token_id, stop})

    batched = generate(m, tok, PROMPTS, max_new_tokens=12, batch_size=len(PROMPTS))
    ended = [stop in r for r in raw]
    assert any(ended) and not all(ended), "rows must end at different steps for this test to bite"
    assert batched == [_hf_generate_one(m, tok, p, 12, eos) for p in PROMPTS]
    assert all(batched)


def test_batches_are_evened_out(tiny_model, monkeypatch):
    from tamperlab.evals import generation

    sizes = []
    real = generation.greedy_tokens
    monkeypatch.setattr(
        generation,
        "greedy_tokens",
        lambda model, ids, *a, **k: sizes.append(ids.shape[0]) or real(model, ids, *a, **k),
    )
    generate(tiny_model.model, tiny_model.tokenizer, PROMPTS, max_new_tokens=2, batch_size=5)
    assert sizes == [4, 3]  # 7 prompts at most 5 per batch: 4 + 3, not 5 + 2


def test_shared_prefix_length_leaves_every_row_a_token_of_its_own():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # identical rows still keep their last token
    assert shared_prefix_length([[1, 2], [3, 4]]) == 0
    assert shared_prefix_length([[1, 2, 3]]) == 0  # one row: nothing to share


def test_the_shared_prefix_runs_once_per_batch(tiny_model, monkeypatch):
    """The chat template's common start is run once (batch 1) and every row's own tokens follow it; the text
    is the one-prompt-at-a-time text (checked above and against transformers' generate)."""
    from tamperlab.evals import generation
    from tamperlab.models.chat import format_prompt

    m, tok = tiny_model.model, tiny_model.tokenizer
    seen = []
    real = generation.greedy_tokens

    def spy(model, ids, *a, prefix=None, **k):
        seen.append((prefix, ids))
        return real(model, ids, *a, prefix=prefix, **k)

    monkeypatch.setattr(generation, "greedy_tokens", spy)
    generate(m, tok, PROMPTS, max_new_tokens=2, batch_size=len(PROMPTS))
    ((prefix, ids),) = seen
    encoded = [tok(format_prompt(tok, p), add_special_tokens=False)["input_ids"] for p in PROMPTS]
    assert prefix.shape == (1, shared_prefix_length(encoded)) and prefix.shape[1] > 0
    assert ids.shape[1] == max(len(e) for e in encoded) - prefix.shape[1]
