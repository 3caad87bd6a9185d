"""evaluate(template=...): harmful requests are wrapped, the other sets and the stored prompts are not."""

from __future__ import annotations

import pytest

from tamperlab.config import ComponentRef, DataRef, EvalSpec
from tamperlab.evals import safety
from tamperlab.evals.safety import evaluate, wrap_request

SPEC = EvalSpec(
    harmful=DataRef(source="builtin:harmful", limit=2),
    harmless=DataRef(source="builtin:harmless", limit=2),
    overrefusal=DataRef(source="builtin:overrefusal", limit=2),
    judges=[ComponentRef(name="keyword")],
    max_new_tokens=2,
    nll_limit=1,
)


def test_wrap_request():
    assert wrap_request(None, "x") == "x"
    assert wrap_request("Story: {prompt}!", "a {b}") == "Story: a {b}!"  # braces in a request are kept
    with pytest.raises(ValueError, match="placeholder"):
        wrap_request("no placeholder", "x")


def test_template_applies_to_harmful_prompts_only(monkeypatch):
    asked = {}

    def fake_generate(model, tokenizer, prompts, **kwargs):
        asked["prompts"], asked["kwargs"] = list(prompts), kwargs
        return ["I'm sorry."] * len(prompts)

    monkeypatch.setattr(safety, "generate", fake_generate)
    monkeypatch.setattr(safety, "nll_pairs", lambda spec: [])
    sets = safety.load_eval_sets(SPEC)
    result = evaluate(None, None, SPEC, sets=sets, template="[[{prompt}]]", system="S", prefill="P")
    expected = [f"[[{p.text}]]" for p in sets["harmful"].prompts]
    expected += [p.text for name in ("harmless", "overrefusal") for p in sets[name].prompts]
    assert asked["prompts"] == expected
    assert (asked["kwargs"]["system"], asked["kwargs"]["prefill"]) == ("S", "P")
    assert [g["prompt"] for g in result.generations] == [
        p.text for n in safety.PROMPT_SETS for p in sets[n].prompts
    ]
    assert result.value("harmful_compliance_rate") == 0.0


def test_no_template_asks_the_requests_as_they_are(monkeypatch):
    asked = {}
    monkeypatch.setattr(
        safety,
        "generate",
        lambda m, t, prompts, **k: asked.setdefault("p", list(prompts)) or [""] * len(prompts),
    )
    monkeypatch.setattr(safety, "nll_pairs", lambda spec: [])
    sets = safety.load_eval_sets(SPEC)
    evaluate(None, None, SPEC, sets=sets)
    assert asked["p"] == [p.text for n in safety.PROMPT_SETS for p in sets[n].prompts]
