"""One evaluation of one model: generate, judge, and compute the safety and capability metrics.

Metrics (names as stored):
- ``harmful_compliance_rate``: share of harmful requests the primary judge says were answered rather than
  refused, with a 95% Wilson interval and n; ``harmful_compliance_rate@JUDGE`` for every other judge.
- ``overrefusal_rate``: share of safe-but-unsafe-looking prompts refused; ``harmless_refusal_rate``: share of
  plainly harmless prompts refused (both by the primary judge, with intervals).
- ``benign_nll`` / ``benign_perplexity``: capability, teacher-forced on held-out harmless reference answers.
- ``kl_from_reference``: when a reference model is given (see :mod:`tamperlab.evals.capability`).
- ``judge_kappa:A~B`` / ``judge_agreement:A~B``: Cohen's kappa and raw agreement of two judges on all items.
- ``incoherent_rate``: share of all answers that are empty, symbol soup or repetition loops
  (:func:`tamperlab.evals.metrics.is_degenerate`), so that "safety" from a broken model is visible.
- capability accuracy, when the spec names benchmarks (``eval.capability``): ``acc:TASK``, ``acc_norm:TASK``
  and the others of :mod:`tamperlab.evals.accuracy`, scored as lm-evaluation-harness scores them, with every
  item's choice and log-likelihoods kept (see :mod:`tamperlab.evals.capability_suite`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tamperlab.config import EvalSpec
from tamperlab.data.sets import PromptSet, load_prompt_set
from tamperlab.evals.capability import capability
from tamperlab.evals.capability_suite import LoadedTask, item_count, load_tasks, score_tasks
from tamperlab.evals.generation import generate
from tamperlab.evals.judges import Judge, JudgeItem, build_judge
from tamperlab.evals.metrics import cohen_kappa, is_degenerate, raw_agreement, wilson_interval
from tamperlab.progress import progress_bar

if TYPE_CHECKING:
    from tamperlab.evals.accuracy import ItemScore

PROMPT_SETS = ("harmful", "harmless", "overrefusal")


@dataclass
class EvalResult:
    """Everything an evaluation produced, as plain records ready for the store."""

    generations: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    capability_items: list[ItemScore] = field(default_factory=list)
    seconds: float = 0.0

    def metric(self, name: str) -> dict[str, Any] | None:
        return next((m for m in self.metrics if m["name"] == name), None)

    def value(self, name: str) -> float | None:
        m = self.metric(name)
        return None if m is None else m["value"]


def build_judges(spec: EvalSpec) -> list[Judge]:
    """Build the spec's judges (first one primary)."""
    return [build_judge(ref.name, ref.args) for ref in spec.judges]


def load_eval_sets(spec: EvalSpec) -> dict[str, PromptSet]:
    """The three prompt sets an evaluation generates on."""
    return {name: load_prompt_set(getattr(spec, name)) for name in PROMPT_SETS}


def nll_pairs(spec: EvalSpec) -> list[tuple[str, str]]:
    """Held-out (prompt, reference answer) pairs for capability: the harmless source's test split."""
    source = spec.harmless.model_copy(update={"split": "test", "limit": spec.nll_limit})
    prompts = load_prompt_set(source)
    return [(p.text, p.reference) for p in prompts.prompts if p.reference]


def evaluate(
    model: Any,
    tokenizer: Any,
    spec: EvalSpec,
    *,
    judges: list[Judge] | None = None,
    reference_model: Any = None,
    sets: dict[str, PromptSet] | None = None,
    tasks: list[LoadedTask] | None = None,
    system: str | None = None,
    prefill: str | None = None,
    template: str | None = None,
) -> EvalResult:
    """Generate answers on the spec's prompt sets, judge them, and compute every metric.

    Args:
        judges: prebuilt judges (built from the spec when None); the first is primary.
        reference_model: a model sharing the tokenizer (or a :class:`~tamperlab.evals.capability.Reference`),
            for ``kl_from_reference``.
        sets: preloaded prompt sets (loaded from the spec when None).
        tasks: preloaded capability tasks (loaded from ``spec.capability`` when None).
        system, prefill: a system prompt and a forced answer start (template and prefill attacks).
        template: a wrapper of the *harmful* requests only, ``{prompt}`` standing for the request (template
            attacks); harmless and over-refusal prompts are asked as they are. Generations and judges keep the
            original request as the prompt.
    """
    start = time.perf_counter()
    judges = judges if judges is not None else build_judges(spec)
    sets = sets if sets is not None else load_eval_sets(spec)
    items = [(name, p) for name in PROMPT_SETS for p in sets[name].prompts]
    asked = [wrap_request(template, p.text) if name == "harmful" else p.text for name, p in items]
    with progress_bar("generating", len(items)) as advance:
        completions = generate(
            model,
            tokenizer,
            asked,
            max_new_tokens=spec.max_new_tokens,
            batch_size=spec.batch_size,
            system=system,
            prefill=prefill,
            on_batch=advance,
        )
    result = EvalResult()
    for (name, p), completion in zip(items, completions, strict=True):
        result.generations.append(
            {
                "prompt_set": name,
                "prompt_id": p.id,
                "category": p.category,
                "prompt": p.text,
                "completion": completion,
            }
        )
    judge_items = [JudgeItem(p.text, c) for (_, p), c in zip(items, completions, strict=True)]
    refusals: dict[str, list[bool]] = {}
    for judge in judges:
        verdicts = judge.judge(judge_items)
        refusals[judge.name] = [v.refused for v in verdicts]
        for (name, p), v in zip(items, verdicts, strict=True):
            result.verdicts.append(
                {
                    "prompt_set": name,
                    "prompt_id": p.id,
                    "judge": judge.name,
                    "refused": v.refused,
                    "score": v.score,
                }
            )
    result.metrics.extend(_rate_metrics(items, refusals, judges[0].name))
    for a, b in itertools.combinations([j.name for j in judges], 2):
        result.metrics.append(
            {"name": f"judge_kappa:{a}~{b}", "value": cohen_kappa(refusals[a], refusals[b]), "n": len(items)}
        )
        result.metrics.append(
            {
                "name": f"judge_agreement:{a}~{b}",
                "value": raw_agreement(refusals[a], refusals[b]),
                "n": len(items),
            }
        )
    degenerate = sum(is_degenerate(c) for c in completions)
    rate = wilson_interval(degenerate, len(completions))
    result.metrics.append(_rate_record("incoherent_rate", rate))
    pairs = nll_pairs(spec)
    if pairs:
        cap = capability(
            model,
            tokenizer,
            pairs,
            reference=reference_model,
            kl_limit=spec.kl_limit,
        )
        result.metrics.append({"name": "benign_nll", "value": cap.nll.nll, "n": cap.nll.responses})
        result.metrics.append(
            {"name": "benign_perplexity", "value": cap.nll.perplexity, "n": cap.nll.responses}
        )
        if cap.kl is not None:
            result.metrics.append({"name": "kl_from_reference", "value": cap.kl, "n": cap.kl_responses})
    tasks = tasks if tasks is not None else load_tasks(spec)
    if tasks:
        # Capability benchmarks are asked as raw text (lm-eval's default), never through a template, system
        # prompt or prefill: those are attacks on the safety prompts only.
        with progress_bar("capability", item_count(tasks)) as advance:
            metrics, scored = score_tasks(
                model, tokenizer, tasks, batch_size=spec.capability_batch_size, on_progress=advance
            )
        result.metrics.extend(metrics)
        result.capability_items = scored
    result.seconds = time.perf_counter() - start
    return result


def wrap_request(template: str | None, request: str) -> str:
    """``template`` with ``{prompt}`` replaced by ``request`` (the request itself when there is none)."""
    if template is None:
        return request
    if "{prompt}" not in template:
        raise ValueError(f"a prompt template needs a '{{prompt}}' placeholder: {template!r}")
    return template.replace("{prompt}", request)


def _rate_record(name: str, rate) -> dict[str, Any]:
    return {"name": name, "value": rate.value, "ci_low": rate.ci_low, "ci_high": rate.ci_high, "n": rate.n}


def _rate_metrics(items, refusals: dict[str, list[bool]], primary: str) -> list[dict[str, Any]]:
    """Compliance on harmful prompts and refusal on harmless and over-refusal prompts, per judge."""
    out = []
    for judge, refused in refusals.items():
        suffix = "" if judge == primary else f"@{judge}"
        by_set: dict[str, list[bool]] = {name: [] for name in PROMPT_SETS}
        for (name, _), r in zip(items, refused, strict=True):
            by_set[name].append(r)
        harmful = by_set["harmful"]
        if harmful:
            complied = sum(not r for r in harmful)
            out.append(
                _rate_record("harmful_compliance_rate" + suffix, wilson_interval(complied, len(harmful)))
            )
        for name, metric in (("overrefusal", "overrefusal_rate"), ("harmless", "harmless_refusal_rate")):
            if by_set[name]:
                out.append(
                    _rate_record(metric + suffix, wilson_interval(sum(by_set[name]), len(by_set[name])))
                )
    return out
