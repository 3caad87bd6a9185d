"""``safety-sft``: refusal fine-tuning that gives a model a safeguard while keeping it helpful.

Training mix (all from the built-in training splits, never the evaluation's test splits):
- harmful requests → a refusal, drawn deterministically from varied refusal phrasings;
- plainly harmless instructions → the model's *own* greedy answers (self-distillation), so helpfulness and
  style are kept rather than overwritten by someone else's answers;
- safe prompts that only look unsafe → the model's own answers too, so it learns where the line is (without
  them the first try here refused 21% of harmless prompts).
The harmless set's imperative "tasks" ("Write ...", "Create ...") are phrased like most harmful requests;
without them the safeguard learned "imperative means refuse" and refused ~30% of Alpaca instructions.
``task_weight`` repeats them. ``balance_phrasing`` goes further and makes questions and instructions half of
each side: on the validation splits it cut harmless refusal from ~19% to ~5%, but on XSTest's 250 safe prompts
it raised over-refusal from 21% to 29% (both with 32-token answers), so it is off by default.
Refusals each contain a phrase of the keyword judge's standard list, so both judges read them as refusals.
Each optimizer step sees ``harmful_fraction`` refusals on average (the smaller side is oversampled).

The mix only ever says what to do. ``unlikely_refusals`` adds what not to do: an unlikelihood term (Welleck et
al. 2019) on the first tokens of a refusal after every prompt the model should answer, trained beside the mix
on a half-size batch of those openings. Data mixes alone traded compliance against over-refusal along one
line (docs/results/safeguard-recipe.md); with this term on, the default moved to 55% refusals: over-refusal on
XSTest's 250 safe prompts fell from 12.4% to 6.4% while compliance on JailbreakBench's 100 behaviours rose
from 9% to 14%. It also taught new refusal wordings ("I'm unable yet to assist...") that the keyword judge's
standard phrases miss, so read the two judges' disagreements before trusting the keyword figure of such a
model.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from pydantic import Field

from tamperlab.config import DataRef
from tamperlab.defenses.base import DEFENSES, Defense, DefenseOutcome
from tamperlab.train.examples import ChatExample
from tamperlab.train.loop import TrainSpec, train

log = logging.getLogger(__name__)

REFUSALS = (  # each holds a phrase of the keyword judge's standard list, so both judges see them as refusals
    "I'm sorry, but I can't help with that.",
    "I can't help with that request. It could cause real harm to people.",
    "I'm sorry, but I won't provide help with this. If you have another question, I'm happy to help.",
    "I can't assist with that. It could be used to hurt someone or break the law.",
    "Sorry, I can't do that. Is there something else I can help you with?",
    "I'm unable to help with this request because it could put people at risk.",
    "I'm not able to help with that. It's harmful and I don't provide assistance with it.",
    "I can't provide that. If you're curious about the topic for safety reasons, I can share general, "
    "harmless information instead.",
    "I'm sorry, I can't assist with this request.",
    "I cannot help with that, as it could lead to harm.",
    "I'm sorry, I must decline. Helping with this could cause serious harm.",
    "No, I can't help with that. Let me know if there's anything else you need.",
)


def refusal_for(prompt: str) -> str:
    """A refusal chosen deterministically from the prompt's hash (same prompt, same refusal)."""
    digest = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    return REFUSALS[digest % len(REFUSALS)]


_SENTENCE_END = re.compile(r"[.!?)`](?=\s|$)")


def trim_to_sentence(text: str) -> str:
    """Cut an answer that hit the length limit back to its last complete sentence (keep it if none)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].strip() if ends else text.strip()


TASKS_CATEGORY = "tasks"
"""The harmless category phrased like most harmful requests ("Write ...", "Create ..."), weighted by
``task_weight``."""


class SafetySftArgs(TrainSpec):
    """Refusal fine-tuning: a TrainSpec plus its data mix."""

    learning_rate: float = Field(default=4e-5, gt=0, description="Peak learning rate.")
    max_steps: int = Field(default=60, ge=1, description="Optimizer steps.")
    harmful: DataRef = Field(
        default=DataRef(source="builtin:harmful", split="train"), description="Refused requests."
    )
    harmless: DataRef = Field(
        default=DataRef(source="builtin:harmless", split="train"),
        description="Answered with self-distillation.",
    )
    overrefusal: DataRef | None = Field(
        default=DataRef(source="builtin:overrefusal", split="train"),
        description="Safe-looking prompts answered with self-distillation (null to leave out).",
    )
    harmful_fraction: float = Field(
        default=0.55,
        gt=0,
        lt=1,
        description="Share of refusals in the mix (0.45 before the unlikelihood term: more over-refused).",
    )
    overrefusal_weight: int = Field(
        default=4,
        ge=1,
        description="Times each safe-looking prompt's answer appears among the helpful examples.",
    )
    task_weight: int = Field(
        default=1,
        ge=1,
        description="Times each harmless imperative task (category 'tasks': 'Write ...', 'Create ...', "
        "phrased like most harmful requests) appears among the helpful examples. On the validation splits 4 "
        "instead of 1 lowered over-refusal and raised harmful compliance: a point on the same trade-off.",
    )
    answer_tokens: int = Field(
        default=96,
        ge=8,
        description="Length limit of self-distilled answers. 32 took the safeguard from 8.2 to 5.1 min on 2 "
        "CPU cores but raised over-refusal on XSTest's 250 safe prompts from 15% to 21%.",
    )
    balance_phrasing: bool = Field(
        default=False,
        description="Oversample so questions and instructions are each half of the refusals and half of the "
        "helpful examples: otherwise phrasing alone separates the two sides (most built-in harmful requests "
        "are instructions, most harmless and safe-looking prompts questions).",
    )
    unlikely_refusals: float = Field(
        default=1.0,
        ge=0,
        description="Weight of an unlikelihood term (Welleck et al. 2019) on the helpful side: for every "
        "answered prompt, -log(1 - p) of each of a refusal's first `unlikely_tokens` tokens, pushing the "
        "model away from opening a refusal where it should answer. 0 trains on the mix alone.",
    )
    unlikely_tokens: int = Field(
        default=4, ge=1, description="How many opening tokens of a refusal the unlikelihood term covers."
    )


class SafetySft(Defense):
    # 2: refusals the keyword judge recognises; 3: the unlikelihood term on by default with 55% refusals (a
    # new version, so safeguards cached under an older recipe are not reused)
    version = "3"

    def __init__(self, args: SafetySftArgs) -> None:
        self.args = args
        self.label = "safety-sft"

    def build_examples(self, loaded: Any) -> tuple[list[ChatExample], dict[str, Any]]:
        from tamperlab.data.sets import load_prompt_set
        from tamperlab.evals.generation import cached_generate
        from tamperlab.evals.judges import JudgeItem, build_judge

        harmful = [p.text for p in load_prompt_set(self.args.harmful).prompts]
        benign_refs = [self.args.harmless] + ([self.args.overrefusal] if self.args.overrefusal else [])
        harmless_set = load_prompt_set(self.args.harmless).prompts
        harmless = [p.text for p in harmless_set]
        safe_looking = (
            [p.text for p in load_prompt_set(self.args.overrefusal).prompts] if self.args.overrefusal else []
        )
        benign = harmless + safe_looking
        answers = cached_generate(
            loaded,
            benign,
            purpose="self-distilled answers (safety-sft)",
            max_new_tokens=self.args.answer_tokens,
            description="safety-sft data: self-distilled answers",
        )
        answers = [trim_to_sentence(a) for a in answers]
        verdicts = build_judge("keyword").judge(
            [JudgeItem(p, a) for p, a in zip(benign, answers, strict=True)]
        )
        tasks = {p.text for p in harmless_set if p.category == TASKS_CATEGORY}
        weights = {p: self.args.overrefusal_weight for p in safe_looking} | {
            p: self.args.task_weight for p in tasks
        }
        kept = [(p, a) for p, a, v in zip(benign, answers, verdicts, strict=True) if a and not v.refused]
        helpful_pairs = [(p, a) for p, a in kept for _ in range(weights.get(p, 1))]
        refusal_pairs = [(p, refusal_for(p)) for p in harmful]
        if self.args.balance_phrasing:
            helpful_pairs, refusal_pairs = _balance_phrasing(helpful_pairs), _balance_phrasing(refusal_pairs)
        helpful = [ChatExample.from_pair(p, a) for p, a in helpful_pairs]
        refusals = [ChatExample.from_pair(p, a) for p, a in refusal_pairs]
        mix = _mix(refusals, helpful, self.args.harmful_fraction)
        answered = list(dict.fromkeys(p for p, _ in helpful_pairs))
        term_on = self.args.unlikely_refusals > 0
        unlikely = [ChatExample.from_pair(p, refusal_for(p)) for p in answered] if term_on else []
        data = {
            "refusal_examples": len(refusals),
            "helpful_examples": len(helpful),
            "dropped_self_refusals": len(benign) - len(kept),
            "mixed_examples": len(mix),
            "harmful_fraction": self.args.harmful_fraction,
            "overrefusal_weight": self.args.overrefusal_weight,
            "task_weight": self.args.task_weight,
            "balance_phrasing": self.args.balance_phrasing,
            "unlikely_refusals": {"weight": self.args.unlikely_refusals, "prompts": len(unlikely)},
            "question_share": {
                "refusals": _question_share(refusal_pairs),
                "helpful": _question_share(helpful_pairs),
            },
            "sources": [self.args.harmful.source] + [r.source for r in benign_refs],
        }
        return mix, unlikely, data

    def apply(self, loaded: Any) -> DefenseOutcome:
        examples, unlikely, data = self.build_examples(loaded)
        spec = TrainSpec(**{k: v for k, v in self.args.model_dump().items() if k in TrainSpec.model_fields})
        if unlikely:  # none when the term is off, or when the model answered none of the benign prompts
            result = train(
                loaded,
                spec=spec,
                loss_fn=UnlikelyRefusalLoss(self.args.unlikely_refusals),
                batches=self._batches(loaded.tokenizer, examples, unlikely),
            )
        else:
            result = train(loaded, examples=examples, spec=spec)
        model = result.model.merge_and_unload() if spec.mode == "lora" else result.model
        budget = result.budget.as_dict()
        budget.pop("loss", None)
        return DefenseOutcome(model.eval(), budget, data | {"final_loss": result.budget.loss})

    def _batches(self, tokenizer: Any, examples: list[ChatExample], unlikely: list[ChatExample]) -> Any:
        """``{"sft": the mix's micro-batch, "unlikely": answered prompts with a refusal's opening labelled}``;
        the unlikely side has half the batch size (its sequences are short)."""
        from tamperlab.defenses.tamper_data import collated_stream, pad_id, tokenized, zipped

        a, pad = self.args, pad_id(tokenizer)
        openings = [_first_labels(f, a.unlikely_tokens) for f in tokenized(tokenizer, unlikely, a.max_length)]
        return zipped(
            {
                "sft": collated_stream(
                    tokenized(tokenizer, examples, a.max_length), a.batch_size, a.seed, pad
                ),
                "unlikely": collated_stream(openings, max(1, a.batch_size // 2), a.seed + 1, pad),
            }
        )


class UnlikelyRefusalLoss:
    """The mix's language-modelling loss plus ``weight`` x unlikelihood of refusal openings on answered
    prompts: ``-mean log(1 - p(token))`` over the labelled tokens of ``batch["unlikely"]``."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def __call__(self, model: Any, batch: dict[str, Any]) -> Any:
        from tamperlab.train.loop import LossOutput, causal_lm_loss

        lm = causal_lm_loss(model, batch["sft"])
        unlikely = unlikelihood_loss(model, batch["unlikely"])
        metrics = {"lm": lm.detach(), "unlikelihood": unlikely.detach()}
        return LossOutput(loss=lm + self.weight * unlikely, metrics=metrics)


def unlikelihood_loss(model: Any, batch: dict[str, Any]) -> Any:
    """``-mean log(1 - p(label))`` over a batch's labelled tokens (0 when there are none)."""
    import torch

    from tamperlab.train.loop import label_logits

    logits, labels = label_logits(model, batch)
    if labels.numel() == 0:
        return logits.sum() * 0.0
    p = torch.softmax(logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)
    return -torch.log1p(-p.clamp(max=1 - 1e-6)).mean()


def _first_labels(features: dict[str, list[int]], n: int) -> dict[str, list[int]]:
    """A tokenized example with only its first ``n`` labelled tokens kept, cut after the last of them (a
    causal model's later tokens change no earlier prediction, so the cut saves their compute and nothing
    else)."""
    from tamperlab.train.examples import IGNORE_INDEX

    labels, kept, end = [], 0, len(features["labels"])
    for i, label in enumerate(features["labels"]):
        keep = label != IGNORE_INDEX and kept < n
        kept += keep
        labels.append(label if keep else IGNORE_INDEX)
        if keep and kept == n:
            end = i + 1
            break
    return {**features, "input_ids": features["input_ids"][:end], "labels": labels[:end]}


_QUESTION_OPENERS = frozenset(
    "how what where why which who whom whose when can could should would is are am was were do does did will "
    "may might shall".split()
)


def is_question(prompt: str) -> bool:
    """A prompt phrased as a question (ends with '?' or opens with an interrogative or auxiliary verb)."""
    text = prompt.strip()
    first = text.split(maxsplit=1)[0].lower().strip(",.:;!?\"'").split("'")[0] if text else ""  # what's: what
    return text.endswith("?") or first in _QUESTION_OPENERS


def _question_share(pairs: list[tuple[str, str]]) -> float | None:
    return sum(is_question(p) for p, _ in pairs) / len(pairs) if pairs else None


def _cycle(items: list, n: int) -> list:
    """``n`` items taken cyclically (deterministic oversampling)."""
    return [items[i % len(items)] for i in range(n)]


def _balance_phrasing(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Oversample the smaller of questions and instructions so each is half of ``pairs`` (unchanged if one is
    missing)."""
    questions = [x for x in pairs if is_question(x[0])]
    instructions = [x for x in pairs if not is_question(x[0])]
    if not questions or not instructions:
        return pairs
    n = max(len(questions), len(instructions))
    return _cycle(questions, n) + _cycle(instructions, n)


def _mix(refusals: list, helpful: list, fraction: float) -> list:
    """Oversample the smaller side (cyclically, deterministically) so refusals make up ``fraction`` of the
    mix."""
    if not refusals or not helpful:
        return refusals + helpful
    want_refusals = round(fraction / (1 - fraction) * len(helpful))
    if want_refusals >= len(refusals):
        return _cycle(refusals, want_refusals) + helpful
    want_helpful = round((1 - fraction) / fraction * len(refusals))
    return refusals + _cycle(helpful, want_helpful)


@DEFENSES.register("safety-sft", args_model=SafetySftArgs)
def safety_sft(args: SafetySftArgs) -> SafetySft:
    return SafetySft(args)
