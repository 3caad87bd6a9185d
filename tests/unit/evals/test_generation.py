"""Batched generation gives exactly the text of one-prompt-at-a-time generation, in input order."""

from tamperlab.evals.generation import generate

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
