"""Capability accuracy: score a task's items and compute the metrics lm-eval reports, with intervals."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tamperlab.errors import ConfigError, DataError
from tamperlab.evals.loglik import generate_until, loglikelihoods
from tamperlab.evals.metrics import wilson_interval
from tamperlab.evals.tasks import TASK_METRICS, GenItem, MCItem


@dataclass(frozen=True)
class ItemScore:
    """One item's outcome, kept so a reader can audit one question: every choice's log-likelihood, the choice
    made (by raw and, where lm-eval reports it, by length-normalised log-likelihood), and whether it was
    right. For generative items ``chosen`` is -1 and ``extra`` holds the response and the answers found."""

    task: str
    item_id: str
    subject: str | None
    gold: tuple[int, ...]
    chosen: int
    chosen_norm: int | None
    correct: bool
    correct_norm: bool | None
    logliks: tuple[float, ...]
    greedy: tuple[bool, ...]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskResult:
    """A task's per-item scores and its metric records (the store's metric shape)."""

    task: str
    items: list[ItemScore]
    metrics: list[dict[str, Any]]


GSM8K_STRICT_PATTERN = r"#### (\-?[0-9\.\,]+)"
"""lm-eval ``gsm8k`` strict-match filter: the first ``#### N`` in the response."""
GSM8K_FLEXIBLE_PATTERN = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
"""lm-eval ``gsm8k`` flexible-extract filter: the last number-like run in the response."""
GSM8K_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
"""lm-eval ``gsm8k`` ``exact_match`` ``regexes_to_ignore`` (applied in order, then ``ignore_case``)."""
FALLBACK = "[invalid]"
"""What lm-eval's regex filter answers when nothing matches."""

_Z95 = 1.959963984540054


def count_requests(items: Sequence[Any]) -> int:
    """How many requests :func:`score_task` makes for ``items`` (one per choice, one per generative item):
    the total its ``on_progress`` counts up to."""
    return sum(len(it.continuations) if isinstance(it, MCItem) else 1 for it in items)


def score_task(
    model: Any,
    tokenizer: Any,
    task: str,
    items: Sequence[Any],
    *,
    batch_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
    max_length: int | None = None,
    max_new_tokens: int = 256,
) -> TaskResult:
    """Score ``items`` of ``task`` as lm-eval does and compute the task's metric records.

    Multiple-choice items: every choice's log-likelihood (:func:`~tamperlab.evals.loglik.loglikelihoods`, all
    items' requests together so shared contexts run once); the choice is lm-eval's ``np.argmax`` (first of
    equal maxima) of the log-likelihoods, and for ``acc_norm`` of the log-likelihoods divided by each choice
    text's length in characters. Generative items (GSM8K): greedy raw-text answers, scored by lm-eval's
    strict-match and flexible-extract filters and its normalised exact match.

    Args:
        task: an lm-eval task name (a key of :data:`tamperlab.evals.tasks.TASK_METRICS`).
        items: that task's :class:`MCItem` or :class:`GenItem` records (not both).
        batch_size: forward-pass batch size.
        on_progress: called with the number of requests finished (see :func:`count_requests`).
        max_length: the model's context limit for lm-eval's left truncation (None: lm-eval's default).
        max_new_tokens: generation limit for generative items (lm-eval's ``max_gen_toks``).

    Raises:
        ConfigError: an unknown task.
        DataError: no items, a mix of item kinds, or a multiple-choice item whose fields disagree.
    """
    if task not in TASK_METRICS:
        raise ConfigError(f"unknown capability task {task!r}; known: {', '.join(sorted(TASK_METRICS))}")
    if not items:
        raise DataError(f"{task}: no items to score")
    if all(isinstance(it, GenItem) for it in items):
        scores = _score_generative(
            model, tokenizer, task, items, batch_size, on_progress, max_length, max_new_tokens
        )
    elif all(isinstance(it, MCItem) for it in items):
        scores = _score_multiple_choice(model, tokenizer, task, items, batch_size, on_progress, max_length)
    else:
        raise DataError(f"{task}: items mix multiple-choice and generative records")
    return TaskResult(task=task, items=scores, metrics=task_metrics(task, scores))


def _score_multiple_choice(
    model: Any,
    tokenizer: Any,
    task: str,
    items: Sequence[MCItem],
    batch_size: int,
    on_progress: Callable[[int], None] | None,
    max_length: int | None,
) -> list[ItemScore]:
    requests: list[tuple[str, str]] = []
    for it in items:
        n = len(it.continuations)
        if n == 0 or len(it.contexts) != n or len(it.choice_texts) != n:
            raise DataError(
                f"{task}: item {it.item_id}: {len(it.contexts)} contexts, {n} continuations and "
                f"{len(it.choice_texts)} choice texts (must be equal and non-zero)"
            )
        if not it.gold or any(not 0 <= g < n for g in it.gold):
            raise DataError(f"{task}: item {it.item_id}: gold {it.gold} outside the {n} choices")
        requests.extend(zip(it.contexts, it.continuations, strict=True))
    results = loglikelihoods(
        model, tokenizer, requests, batch_size=batch_size, max_length=max_length, on_progress=on_progress
    )
    normed = "acc_norm" in TASK_METRICS[task]
    scores, start = [], 0
    for it in items:
        own = results[start : start + len(it.continuations)]
        start += len(it.continuations)
        scores.append(
            score_choices(
                task,
                it,
                [r.logprob for r in own],
                [r.greedy for r in own],
                normed=normed,
            )
        )
    return scores


def score_choices(
    task: str, item: MCItem, logliks: Sequence[float], greedy: Sequence[bool], *, normed: bool
) -> ItemScore:
    """One multiple-choice item's :class:`ItemScore` from its choices' log-likelihoods, as lm-eval's
    ``process_results`` decides: ``np.argmax(lls)``, and ``np.argmax(lls / len(choice_text))`` (characters)
    when ``normed``. With several gold choices (TruthfulQA MC2) a choice is right when it is one of them, and
    ``extra["mc2"]`` holds the normalised probability mass of the true answers (lm-eval's MC2 score)."""
    import numpy as np

    lls = np.array(logliks, dtype=float)
    chosen = int(np.argmax(lls))
    chosen_norm = None
    if normed:
        lengths = np.array([float(len(t)) for t in item.choice_texts])
        with np.errstate(divide="ignore", invalid="ignore"):
            chosen_norm = int(np.argmax(lls / lengths))
    extra: dict[str, Any] = {}
    if task == "truthfulqa_mc2":
        extra["mc2"] = mc2_score(logliks, [i in item.gold for i in range(len(logliks))])
    return ItemScore(
        task=task,
        item_id=item.item_id,
        subject=item.subject,
        gold=tuple(item.gold),
        chosen=chosen,
        chosen_norm=chosen_norm,
        correct=chosen in item.gold,
        correct_norm=None if chosen_norm is None else chosen_norm in item.gold,
        logliks=tuple(float(x) for x in logliks),
        greedy=tuple(bool(g) for g in greedy),
        extra=extra,
    )


def mc2_score(logliks: Sequence[float], true: Sequence[bool]) -> float:
    """lm-eval's TruthfulQA MC2: ``exp(ll)`` normalised over all answers, summed over the true ones.

    Computed as a softmax shifted by the largest log-likelihood, which is the same number where lm-eval's
    plain ``exp`` is finite and stays defined where every ``exp(ll)`` underflows to zero.
    """
    import numpy as np

    lls = np.array(logliks, dtype=float)
    probs = np.exp(lls - lls.max())
    probs = probs / probs.sum()
    return float(np.sum(probs[np.array(true, dtype=bool)]))


def _score_generative(
    model: Any,
    tokenizer: Any,
    task: str,
    items: Sequence[GenItem],
    batch_size: int,
    on_progress: Callable[[int], None] | None,
    max_length: int | None,
    max_new_tokens: int,
) -> list[ItemScore]:
    by_until: dict[tuple[str, ...], list[int]] = {}
    for i, it in enumerate(items):
        by_until.setdefault(tuple(it.until), []).append(i)
    responses = [""] * len(items)
    for until, members in by_until.items():
        texts = generate_until(
            model,
            tokenizer,
            [items[i].prompt for i in members],
            until=until,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            max_length=max_length,
            on_progress=on_progress,
        )
        for i, text in zip(members, texts, strict=True):
            responses[i] = text
    return [score_generation(task, it, text) for it, text in zip(items, responses, strict=True)]


def score_generation(task: str, item: GenItem, response: str) -> ItemScore:
    """A GSM8K item's :class:`ItemScore`: ``correct`` is lm-eval's strict-match exact match; ``extra`` holds
    the response, both filters' extracted answers and ``correct_flexible`` (flexible-extract)."""
    strict = regex_filter(response, GSM8K_STRICT_PATTERN, group_select=0)
    flexible = regex_filter(response, GSM8K_FLEXIBLE_PATTERN, group_select=-1)
    return ItemScore(
        task=task,
        item_id=item.item_id,
        subject=item.subject,
        gold=(),
        chosen=-1,
        chosen_norm=None,
        correct=exact_match(strict, item.target),
        correct_norm=None,
        logliks=(),
        greedy=(),
        extra={
            "response": response,
            "strict": strict,
            "flexible": flexible,
            "correct_flexible": exact_match(flexible, item.target),
        },
    )


def regex_filter(response: str, pattern: str, *, group_select: int = 0, fallback: str = FALLBACK) -> str:
    """lm-eval's ``regex`` filter: ``re.findall``'s ``group_select``-th match (for several groups, its first
    non-empty group), stripped; ``fallback`` when nothing matches."""
    matches = re.findall(pattern, response)
    if not matches:
        return fallback
    match = matches[group_select]
    if isinstance(match, tuple):
        found = [m for m in match if m]
        match = found[0] if found else fallback
    return match.strip()


def exact_match(
    prediction: str,
    reference: str,
    *,
    regexes_to_ignore: Sequence[str] = GSM8K_IGNORE,
    ignore_case: bool = True,
) -> bool:
    """lm-eval's ``exact_match`` as ``gsm8k`` configures it: each regex of ``regexes_to_ignore`` removed from
    both strings in turn, then (``ignore_case``) both lower-cased, then compared."""
    for pattern in regexes_to_ignore:
        prediction = re.sub(pattern, "", prediction)
        reference = re.sub(pattern, "", reference)
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    return prediction == reference


def task_metrics(task: str, scores: Sequence[ItemScore]) -> list[dict[str, Any]]:
    """The metric records of ``task`` (the store's ``{name, value, ci_low, ci_high, n}``) from its items.

    Proportions get 95% Wilson intervals. MMLU adds per-subject accuracy and the macro average (the mean of
    the subjects' accuracies, with a normal interval from the subjects' binomial variances); ``acc:mmlu`` is
    over items, as lm-eval's size-weighted group average. TruthfulQA MC2's ``acc`` is the mean true-answer
    probability mass, with a normal interval on the mean (clipped to [0, 1]).
    """
    names = TASK_METRICS[task]
    n = len(scores)
    if task == "truthfulqa_mc2":
        return [_mean_record(f"acc:{task}", [s.extra["mc2"] for s in scores])]
    if task == "gsm8k":
        return [
            _rate_record("exact_match:gsm8k", sum(s.correct for s in scores), n),
            _rate_record(
                "exact_match_flexible:gsm8k", sum(bool(s.extra["correct_flexible"]) for s in scores), n
            ),
        ]
    records = [_rate_record(f"acc:{task}", sum(s.correct for s in scores), n)]
    if "acc_norm" in names:
        records.append(_rate_record(f"acc_norm:{task}", sum(bool(s.correct_norm) for s in scores), n))
    if task == "mmlu":
        subjects: dict[str, list[bool]] = {}
        for s in scores:
            subjects.setdefault(s.subject or "", []).append(s.correct)
        rates = {name: (sum(v), len(v)) for name, v in sorted(subjects.items())}
        props = [k / m for k, m in rates.values()]
        macro = sum(props) / len(props)
        half = _Z95 * math.sqrt(sum(p * (1 - p) / m for p, (_, m) in zip(props, rates.values(), strict=True)))
        half /= len(props)
        records.append(
            {
                "name": "acc_macro:mmlu",
                "value": macro,
                "ci_low": max(0.0, macro - half),
                "ci_high": min(1.0, macro + half),
                "n": n,
            }
        )
        records.extend(_rate_record(f"acc:mmlu/{name}", k, m) for name, (k, m) in rates.items())
    return records


def _rate_record(name: str, k: int, n: int) -> dict[str, Any]:
    rate = wilson_interval(int(k), n)
    return {"name": name, "value": rate.value, "ci_low": rate.ci_low, "ci_high": rate.ci_high, "n": n}


def _mean_record(name: str, values: Sequence[float]) -> dict[str, Any]:
    """Mean with a normal 95% interval (sample standard deviation, as lm-eval's stderr), clipped to [0, 1];
    no interval for fewer than two values."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"name": name, "value": mean, "ci_low": None, "ci_high": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = _Z95 * sd / math.sqrt(n)
    return {
        "name": name,
        "value": mean,
        "ci_low": max(0.0, mean - half),
        "ci_high": min(1.0, mean + half),
        "n": n,
    }
