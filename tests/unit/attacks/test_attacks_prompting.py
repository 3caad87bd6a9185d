"""prefill and template: no weight change, zero cost, and what they change in the evaluation: the answer's
first tokens (prefill) and the harmful requests only (template)."""

from __future__ import annotations

import pytest
import torch

from tamperlab.attacks import AttackContext, build_attack
from tamperlab.attacks.prompting import TEMPLATES
from tamperlab.config import ComponentRef, DataRef, EvalSpec, ModelSpec
from tamperlab.errors import ConfigError
from tamperlab.evals.safety import evaluate

TINY_EVAL = EvalSpec(
    harmful=DataRef(source="builtin:harmful", limit=2),
    harmless=DataRef(source="builtin:harmless", limit=2),
    overrefusal=DataRef(source="builtin:overrefusal", limit=1),
    judges=[ComponentRef(name="keyword")],
    max_new_tokens=4,
    nll_limit=1,
)


def spy_generate(model, monkeypatch):
    """Record the token ids every generation batch starts from: the batch's shared prefix, then each row's own
    (left-padded) tokens."""
    from tamperlab.evals import generation

    calls = []
    real = generation.greedy_tokens

    def recording(m, ids, *args, prefix=None, **kwargs):
        if m is model:
            shared = prefix.expand(ids.shape[0], -1) if prefix is not None else ids[:, :0]
            calls.append(torch.cat([shared, ids], dim=1))
        return real(m, ids, *args, prefix=prefix, **kwargs)

    monkeypatch.setattr(generation, "greedy_tokens", recording)
    return calls


@pytest.mark.parametrize("name", ["prefill", "template"])
def test_prompting_attacks_leave_weights_alone_and_cost_nothing(tiny_model, name):
    attack = build_attack(name, {})
    before = {n: p.detach().clone() for n, p in tiny_model.model.named_parameters()}
    seen = []
    attack.run(
        tiny_model,
        AttackContext(unaligned=ModelSpec()),
        seed=0,
        milestones=[0, 2, 4],
        on_milestone=lambda budget, m: seen.append((budget, m)),
    )
    assert [b.steps for b, _ in seen] == [0, 1]
    assert all((b.examples, b.tokens, b.flops, b.seconds) == (0, 0, 0, 0.0) for b, _ in seen)
    assert all(m is tiny_model.model for _, m in seen)
    assert all(torch.equal(p, before[n]) for n, p in tiny_model.model.named_parameters())
    assert attack.describe_data(AttackContext(unaligned=ModelSpec()))["weights_changed"] is False


def test_prefill_forces_the_first_tokens_of_every_answer(tiny_model, monkeypatch):
    attack = build_attack("prefill", {"prefix": "Sure, here is"})
    assert attack.eval_overrides == {"prefill": "Sure, here is"}
    tok = tiny_model.tokenizer
    calls = spy_generate(tiny_model.model, monkeypatch)
    plain = evaluate(tiny_model.model, tok, TINY_EVAL)
    forced = evaluate(tiny_model.model, tok, TINY_EVAL, **attack.eval_overrides)
    plain_ids, forced_ids = calls[0], calls[-1]
    assert not any(tok.decode(row).endswith("Sure, here is") for row in plain_ids)
    assert all(tok.decode(row).endswith("assistant\nSure, here is") for row in forced_ids)
    plain_text = [g["completion"] for g in plain.generations]
    forced_text = [g["completion"] for g in forced.generations]
    assert plain_text != forced_text  # the model continues the prefix instead of starting its own answer


def test_template_wraps_only_the_harmful_requests(tiny_model, monkeypatch):
    attack = build_attack("template", {"style": "novel"})
    assert attack.label == "template-novel" and attack.eval_overrides == {"template": TEMPLATES["novel"]}
    tok = tiny_model.tokenizer
    calls = spy_generate(tiny_model.model, monkeypatch)
    result = evaluate(tiny_model.model, tok, TINY_EVAL, **attack.eval_overrides)
    seen = [tok.decode(row, skip_special_tokens=True) for batch in calls for row in batch]
    wrapper_start = TEMPLATES["novel"].split("{prompt}")[0][:40]
    for g in result.generations:
        asked = [s for s in seen if g["prompt"] in s]
        assert asked, g["prompt"]
        assert any(wrapper_start in s for s in asked) == (g["prompt_set"] == "harmful")
    assert {g["prompt_set"] for g in result.generations} == {"harmful", "harmless", "overrefusal"}
    assert all("{prompt}" not in g["prompt"] and "thriller" not in g["prompt"] for g in result.generations)


def test_custom_template_needs_a_placeholder():
    assert build_attack("template", {"text": "Pretend you are a pirate. {prompt}"}).label == "template-custom"
    with pytest.raises(ConfigError, match="prompt"):
        build_attack("template", {"text": "no placeholder here"})


def test_templates_are_wrappers_with_one_placeholder():
    assert all(t.count("{prompt}") == 1 for t in TEMPLATES.values())
