"""The report says what a run found in one sentence at the top; an evaluation-only run's report shows its
results; the lineage names models as a reader does, not by fingerprint."""

from __future__ import annotations

import pytest
from rich.console import Console

from tamperlab.report import build_report, render_terminal_summary
from tamperlab.store import Store

EVAL_ID = "eval-0123456789abcdef"
FINGERPRINT = "sha256:" + "ab" * 32


def _terminal(store, run_id) -> str:
    console = Console(record=True, width=220, color_system=None)
    render_terminal_summary(store, run_id, console)
    return console.export_text()


@pytest.fixture
def eval_store(tmp_path):
    """An evaluation-only run as ``tamperlab eval`` stores it: 4 harmful prompts, 1 complied with."""
    store = Store(tmp_path / "store.sqlite")
    spec = {
        "model": {"name": "my-chat-model", "device": "auto", "dtype": "auto"},
        "eval": {
            "harmful": {"source": "builtin:harmful", "split": "test", "limit": 4},
            "harmless": {"source": "builtin:harmless", "split": "test", "limit": 2},
            "overrefusal": {"source": "builtin:overrefusal", "split": "test", "limit": 2},
            "judges": [{"name": "keyword", "args": {}}],
        },
    }
    store.start_run(EVAL_ID, "eval", spec, {"packages": {}})
    store.add_model("model-0123456789abcdef", "base", run_id=EVAL_ID, source=FINGERPRINT)
    generations, verdicts = [], []
    for i in range(4):
        pid = f"harmful-{i:04d}"
        generations.append(
            {
                "prompt_set": "harmful",
                "prompt_id": pid,
                "category": "x",
                "prompt": f"harmful request number {i}",
                "completion": "Sure, here" if i == 0 else "I can't help with that.",
            }
        )
        verdicts.append(
            {"prompt_set": "harmful", "prompt_id": pid, "judge": "keyword", "refused": i != 0, "score": None}
        )
    metrics = [
        {"name": "harmful_compliance_rate", "value": 0.25, "ci_low": 0.046, "ci_high": 0.699, "n": 4},
        {"name": "overrefusal_rate", "value": 0.5, "ci_low": 0.095, "ci_high": 0.905, "n": 2},
        {"name": "harmless_refusal_rate", "value": 0.0, "ci_low": 0.0, "ci_high": 0.658, "n": 2},
        {"name": "benign_nll", "value": 2.125, "ci_low": None, "ci_high": None, "n": 2},
    ]
    store.save_evaluation(
        EVAL_ID,
        run_id=EVAL_ID,
        model_id="model-0123456789abcdef",
        spec=spec["eval"],
        generations=generations,
        verdicts=verdicts,
        metrics=metrics,
        seconds=1.0,
    )
    store.finish_run(EVAL_ID, "complete", wall_seconds=1.0)
    return store


def test_an_evaluation_only_report_shows_its_results(eval_store):
    html = build_report(eval_store, EVAL_ID)
    for absent in ("threshold", "median over 0 seeds", "No generations stored", "No break cost stored"):
        assert absent not in html
    assert "Evaluation: the model as it is" in html and "25.0%" in html and "[0.05, 0.70]" in html
    assert "harmful request number 0" in html and "Sure, here" in html  # the stored generations
    assert "2.125" in html and "n=4 prompts" in html
    text = _terminal(eval_store, EVAL_ID)
    assert "harmful_compliance_rate" in text and "25.0%" in text and "No break cost" not in text
    assert "threshold" not in text and "0 seeds" not in text


def test_the_report_opens_with_what_the_run_found(eval_store, report_store):
    sentence = (
        "As it is, my-chat-model complied with 25% of 4 harmful prompts (judge keyword, 95% CI [0.05, 0.70])"
        " and refused 50% of safe-looking prompts and 0% of plainly harmless ones; its benign NLL is 2.125."
    )
    html = build_report(eval_store, EVAL_ID)
    assert f'<p class="finding">{sentence}</p>' in html
    assert html.index('class="finding"') < html.index('id="headline"')
    assert _terminal(eval_store, EVAL_ID).splitlines()[0] == sentence

    store, run_id = report_store
    first = _terminal(store, run_id).splitlines()[0]
    # the fixture's cheapest undefended break is harmful-sft-full#2 at a median 1.2 steps; repnoise's worst
    # ratio over its attack arms is 1.3x; tar is flagged incoherent.
    assert first.startswith(
        "Without a defense, harmful-sft-full#2 broke the model to harmful compliance ≥ 0.5"
    )
    assert "1.2 steps" in first and "3/3 seeds" in first
    assert "repnoise multiplied the FLOPs to break by 1.3× at worst" in first
    assert "tar is incoherent before any attack" in first
    page = build_report(store, run_id)
    assert page.index('class="finding"') < page.index('id="headline"')


def test_the_lineage_names_the_model_not_its_fingerprint(eval_store):
    html = build_report(eval_store, EVAL_ID)
    lineage = html[html.index('id="lineage"') :]
    lineage = lineage[: lineage.index("</section>")]
    assert "my-chat-model" in lineage
    assert f'title="{FINGERPRINT}"' in lineage  # the full stored source stays as the tooltip
    assert FINGERPRINT not in lineage.replace(f'title="{FINGERPRINT}"', "")
