"""Capability metrics as lm-eval computes them: choices, normalisation, MC2, MMLU averages, GSM8K filters."""

from __future__ import annotations

import math
import random

import pytest

from tamperlab.errors import ConfigError, DataError
from tamperlab.evals import accuracy
from tamperlab.evals.accuracy import (
    count_requests,
    exact_match,
    mc2_score,
    regex_filter,
    score_choices,
    score_generation,
    score_task,
    task_metrics,
)
from tamperlab.evals.metrics import wilson_interval
from tamperlab.evals.tasks import GenItem, MCItem


def mc(item_id="q", choices=("a", "b"), gold=(0,), subject=None) -> MCItem:
    return MCItem(
        item_id=item_id,
        subject=subject,
        contexts=("Q:",) * len(choices),
        continuations=tuple(" " + c for c in choices),
        choice_texts=tuple(choices),
        gold=tuple(gold),
    )


def by_name(result_metrics) -> dict[str, dict]:
    return {m["name"]: m for m in result_metrics}


def test_acc_and_acc_norm_use_character_lengths():
    item = mc(choices=("ab", "abcdef", "x"), gold=(1,))
    # raw: choice 0 (-2.0) wins; per character: -2/2=-1, -3/6=-0.5, -2.5/1=-2.5 -> choice 1
    score = score_choices("hellaswag", item, [-2.0, -3.0, -2.5], [False] * 3, normed=True)
    assert (score.chosen, score.chosen_norm, score.correct, score.correct_norm) == (0, 1, False, True)
    # lm-eval divides by len(str), not bytes: "éé" is 2 characters (4 bytes)
    item = mc(choices=("éé", "abc"), gold=(0,))
    score = score_choices("piqa", item, [-2.0, -2.9], [False] * 2, normed=True)
    assert score.chosen_norm == 1  # -1.0 vs -0.967; by bytes it would be -0.5 vs -0.967 -> 0
    assert score_choices("mmlu", item, [-2.0, -2.9], [False] * 2, normed=False).chosen_norm is None


def test_ties_go_to_the_first_choice_as_numpy_argmax():
    item = mc(choices=("a", "b", "c"), gold=(2,))
    score = score_choices("arc_easy", item, [-1.0, -0.5, -0.5], [False] * 3, normed=True)
    assert (score.chosen, score.chosen_norm) == (1, 1)


def test_mc2_is_the_true_answers_probability_mass():
    lls = [math.log(0.2), math.log(0.3), math.log(0.1)]
    assert mc2_score(lls, [True, False, True]) == pytest.approx(0.3 / 0.6)
    # where lm-eval's exp(ll) underflows, the shifted softmax still gives the same ratio
    assert mc2_score([-2000.0, -2000.0 + math.log(3)], [False, True]) == pytest.approx(0.75)
    item = mc(choices=("t1", "f1", "t2"), gold=(0, 2))
    score = score_choices("truthfulqa_mc2", item, lls, [False] * 3, normed=False)
    assert score.chosen == 1 and not score.correct  # the most likely answer is a false one
    assert score.extra["mc2"] == pytest.approx(0.5)
    other = score_choices("truthfulqa_mc2", item, [0.0, 0.0, -1.0], [False] * 3, normed=False)
    record = by_name(task_metrics("truthfulqa_mc2", [score, other]))["acc:truthfulqa_mc2"]
    values = [0.5, mc2_score([0.0, 0.0, -1.0], [True, False, True])]
    assert record["value"] == pytest.approx(sum(values) / 2)
    sd = abs(values[0] - values[1]) / math.sqrt(2)
    assert record["ci_low"] == pytest.approx(
        max(0.0, record["value"] - 1.959963984540054 * sd / math.sqrt(2))
    )
    assert record["n"] == 2


def test_mmlu_micro_macro_and_subjects():
    scores = []
    # subject a: 3 of 4 right; subject b: 0 of 1 right
    for k, right in enumerate([True, True, True, False]):
        item = mc(item_id=f"a{k}", choices=("A", "B"), gold=(0 if right else 1,), subject="a")
        scores.append(score_choices("mmlu", item, [-1.0, -2.0], [True, False], normed=False))
    item = mc(item_id="b0", choices=("A", "B"), gold=(1,), subject="b")
    scores.append(score_choices("mmlu", item, [-1.0, -2.0], [True, False], normed=False))
    metrics = by_name(task_metrics("mmlu", scores))
    assert metrics["acc:mmlu"]["value"] == pytest.approx(3 / 5)
    assert metrics["acc_macro:mmlu"]["value"] == pytest.approx((3 / 4 + 0) / 2)
    assert metrics["acc:mmlu/a"]["value"] == 0.75 and metrics["acc:mmlu/a"]["n"] == 4
    assert metrics["acc:mmlu/b"]["value"] == 0.0 and metrics["acc:mmlu/b"]["n"] == 1
    assert metrics["acc:mmlu"]["ci_low"] == pytest.approx(wilson_interval(3, 5).ci_low)
    assert "acc_norm:mmlu" not in metrics
    low, high = metrics["acc_macro:mmlu"]["ci_low"], metrics["acc_macro:mmlu"]["ci_high"]
    assert 0.0 <= low < 0.375 < high <= 1.0


@pytest.mark.parametrize(
    ("response", "strict", "flexible"),
    [
        ("She pays 3 * 2 = 6.\n#### 1,234", "1,234", "1,234"),
        ("The answer is $5.", "[invalid]", "$5."),
        ("#### 7 and then 8 apples, 9", "7", "9"),
        ("no numbers here", "[invalid]", "[invalid]"),
        ("#### -3.5\n\nQuestion", "-3.5", "-3.5"),
    ],
)
def test_gsm8k_filters(response, strict, flexible):
    assert regex_filter(response, accuracy.GSM8K_STRICT_PATTERN, group_select=0) == strict
    assert regex_filter(response, accuracy.GSM8K_FLEXIBLE_PATTERN, group_select=-1) == flexible


def test_gsm8k_exact_match_normalisation():
    target = "Natalia sold 48/2 = 24 clips in May.\n#### 1,234"
    assert exact_match("1,234", target)
    assert exact_match("1234", target)
    assert exact_match("$1,234.", target)
    assert not exact_match("1234.5", target)
    assert not exact_match("[invalid]", target)
    assert exact_match("5", "#### 5") and exact_match("$5.", "text\n#### 5")
    item = GenItem(
        item_id="g", subject=None, prompt="Question: x\nAnswer:", target=target, until=("Question:",)
    )
    score = score_generation("gsm8k", item, "Total: $1,234.")
    assert not score.correct and score.extra["correct_flexible"]
    assert score.extra["strict"] == "[invalid]" and score.extra["flexible"] == "$1,234."


def test_score_task_gsm8k_records(monkeypatch, tiny_model):
    seen = {}

    def fake_generate(model, tokenizer, prompts, *, until, max_new_tokens, **kwargs):
        seen["until"], seen["max_new_tokens"] = until, max_new_tokens
        return ["#### 72" if "first" in p else "It is 10." for p in prompts]

    monkeypatch.setattr(accuracy, "generate_until", fake_generate)
    items = [
        GenItem("1", None, "Question: first\nAnswer:", "... #### 72", ("Question:",)),
        GenItem("2", None, "Question: second\nAnswer:", "... #### 10", ("Question:",)),
    ]
    result = score_task(tiny_model.model, tiny_model.tokenizer, "gsm8k", items, max_new_tokens=64)
    metrics = by_name(result.metrics)
    assert metrics["exact_match:gsm8k"]["value"] == 0.5
    assert metrics["exact_match_flexible:gsm8k"]["value"] == 1.0
    assert seen == {"until": ("Question:",), "max_new_tokens": 64}
    assert [s.correct for s in result.items] == [True, False] and result.items[1].chosen == -1


def _random_items(seed: int, n: int) -> list[MCItem]:
    rng = random.Random(seed)
    words = "the cat sat on a mat dog ran far away yes no".split()
    items = []
    for k in range(n):
        question = " ".join(rng.choice(words) for _ in range(rng.randint(2, 12)))
        choices = tuple(" ".join(rng.choice(words) for _ in range(rng.randint(1, 5))) for _ in range(4))
        if len(set(choices)) < 4:
            continue
        context = f"Question: {question}\nAnswer:"
        items.append(
            MCItem(
                str(k), None, (context,) * 4, tuple(" " + c for c in choices), choices, (rng.randrange(4),)
            )
        )
    return items


def test_shuffled_options_keep_the_chosen_option(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    items = _random_items(0, 16)
    rng = random.Random(1)
    shuffled = []
    for it in items:
        perm = list(range(4))
        rng.shuffle(perm)
        shuffled.append(
            MCItem(
                it.item_id,
                it.subject,
                tuple(it.contexts[p] for p in perm),
                tuple(it.continuations[p] for p in perm),
                tuple(it.choice_texts[p] for p in perm),
                tuple(perm.index(g) for g in it.gold),
            )
        )
    first = score_task(model, tok, "hellaswag", items, batch_size=5)
    second = score_task(model, tok, "hellaswag", shuffled, batch_size=32)
    for it, sh, a, b in zip(items, shuffled, first.items, second.items, strict=True):
        lls = sorted(a.logliks)
        if lls[-1] - lls[-2] > 1e-4:  # not a tie
            assert it.choice_texts[a.chosen] == sh.choice_texts[b.chosen]
            assert a.correct == b.correct
    assert by_name(first.metrics).keys() == {"acc:hellaswag", "acc_norm:hellaswag"}


def test_score_task_matches_the_engine_and_winogrande_contexts(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    wino = MCItem(
        "w1",
        None,
        ("The cat sat because the cat", "The cat sat because the dog"),
        (" was tired.", " was tired."),
        ("the cat", "the dog"),
        (1,),
    )
    progress = []
    result = score_task(model, tok, "winogrande", [wino], on_progress=progress.append)
    assert sum(progress) == count_requests([wino]) == 2
    direct = accuracy.loglikelihoods(model, tok, list(zip(wino.contexts, wino.continuations, strict=True)))
    assert result.items[0].logliks == tuple(r.logprob for r in direct)
    assert by_name(result.metrics).keys() == {"acc:winogrande"}


def test_bad_input_is_reported(tiny_model):
    model, tok = tiny_model.model, tiny_model.tokenizer
    with pytest.raises(ConfigError, match="unknown capability task 'nope'"):
        score_task(model, tok, "nope", [mc()])
    with pytest.raises(DataError, match="no items"):
        score_task(model, tok, "arc_easy", [])
    with pytest.raises(DataError, match="item q: gold"):
        score_task(model, tok, "arc_easy", [mc(gold=(5,))])
