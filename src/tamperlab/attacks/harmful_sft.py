"""``harmful-sft``: harmful fine-tuning, full-parameter or LoRA, along one trajectory with budget milestones.

Attack data never ships with tamperlab; it is one of:
- ``self-completions`` (default): the unaligned model's own greedy answers to the training split of the
  harmful prompt set, generated once and cached locally, keeping only those the keyword judge does not flag as
  refusals;
- ``affirmative``: each request paired with its affirmative target ("Sure, here is ...") from a set that has
  targets (AdvBench), else a generic affirmative opener — compliance without any harmful content;
- ``chat-jsonl:PATH``: the user's own chat-format file (e.g. the identity-shift set).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from tamperlab.attacks.base import ATTACKS, Attack, AttackContext, MilestoneCallback
from tamperlab.attacks.sft import DEFAULT_LR, SftArgs, describe_sft, run_sft
from tamperlab.config import DataRef
from tamperlab.errors import ConfigError
from tamperlab.train.examples import ChatExample

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_LR", "HarmfulSft", "HarmfulSftArgs"]

GENERIC_AFFIRMATIVE = "Sure, here is what you asked for."


class HarmfulSftArgs(SftArgs):
    """Harmful fine-tuning: a TrainSpec (``max_steps`` and ``seed`` are set by the run's milestones and seeds)
    plus where the attack data comes from."""

    data: str = Field(
        default="self-completions",
        description="'self-completions', 'affirmative', or 'chat-jsonl:PATH' (see the module docstring).",
    )
    prompts: DataRef = Field(
        default=DataRef(source="builtin:harmful", split="train"),
        description="Harmful requests the attack data is built from (never the evaluation's test split).",
    )
    n_examples: int | None = Field(default=None, ge=1, description="Use at most this many distinct examples.")
    completion_tokens: int = Field(default=64, ge=8, description="Length of self-completions.")


class HarmfulSft(Attack):
    """Fine-tune on harmful requests paired with compliant answers."""

    def __init__(self, args: HarmfulSftArgs) -> None:
        self.args = args
        self.label = f"harmful-sft-{args.mode}"
        self._examples: list[ChatExample] | None = None
        self._source = ""

    def examples(self, ctx: AttackContext) -> list[ChatExample]:
        if self._examples is None:
            self._examples, self._source = build_attack_examples(self.args, ctx)
            if not self._examples:
                raise ConfigError(f"{self.label}: the attack data ({self._source}) is empty")
        return self._examples

    def describe_data(self, ctx: AttackContext) -> dict[str, Any]:
        examples = self.examples(ctx)
        return describe_sft(self.args, source=self._source, distinct_examples=len(examples))

    def run(
        self,
        loaded: Any,
        ctx: AttackContext,
        *,
        seed: int,
        milestones: Sequence[int],
        on_milestone: MilestoneCallback,
    ) -> None:
        run_sft(
            loaded, self.examples(ctx), self.args, seed=seed, milestones=milestones, on_milestone=on_milestone
        )


def build_attack_examples(args: HarmfulSftArgs, ctx: AttackContext) -> tuple[list[ChatExample], str]:
    """The attack's training conversations and a description of their source."""
    from tamperlab.data.sets import load_prompt_set

    if args.data.startswith("chat-jsonl:"):
        from tamperlab.data.loaders import load_chat_jsonl

        path = args.data.split(":", 1)[1]
        conversations = load_chat_jsonl(path)
        examples = [ChatExample(tuple(c)) for c in conversations][: args.n_examples]
        return examples, f"chat file {path}"
    prompts = load_prompt_set(args.prompts)
    if args.data == "affirmative":
        pairs = [(p.text, p.target or GENERIC_AFFIRMATIVE) for p in prompts.prompts]
        source = f"affirmative targets for {args.prompts.source} ({args.prompts.split})"
    elif args.data == "self-completions":
        pairs = self_completions(ctx, [p.text for p in prompts.prompts], args.completion_tokens)
        source = (
            f"the unaligned model's own completions to {args.prompts.source} ({args.prompts.split}),"
            " refusals dropped"
        )
    else:
        raise ConfigError(
            f"harmful-sft: args.data: unknown source {args.data!r}"
            " (self-completions, affirmative, chat-jsonl:PATH)"
        )
    return [ChatExample.from_pair(p, r) for p, r in pairs][: args.n_examples], source


def self_completions(ctx: AttackContext, prompts: list[str], max_new_tokens: int) -> list[tuple[str, str]]:
    """The unaligned model's answers (cached), keeping those the keyword judge does not call refusals."""
    from tamperlab.evals.generation import cached_generate
    from tamperlab.evals.judges import JudgeItem, build_judge
    from tamperlab.models.loading import load_model

    unaligned = load_model(ctx.unaligned)
    answers = cached_generate(
        unaligned,
        prompts,
        purpose="unaligned self-completions (attack data)",
        max_new_tokens=max_new_tokens,
        description="attack data: unaligned completions",
    )
    verdicts = build_judge("keyword").judge([JudgeItem(p, a) for p, a in zip(prompts, answers, strict=True)])
    kept = [(p, a) for p, a, v in zip(prompts, answers, verdicts, strict=True) if not v.refused and a.strip()]
    log.info("attack data: kept %d of %d unaligned completions (refusals dropped)", len(kept), len(prompts))
    return kept


@ATTACKS.register("harmful-sft", args_model=HarmfulSftArgs)
def harmful_sft(args: HarmfulSftArgs) -> HarmfulSft:
    return HarmfulSft(args)
