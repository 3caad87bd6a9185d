"""``benign-sft``: ordinary harmless instruction fine-tuning, with no harmful intent at all.

Fine-tuning on benign data alone erodes safety as a side effect (Qi et al. 2023: Llama-2-7b-chat's harmfulness
rate went from 0.3% to 16.1% after one epoch of Alpaca). This attack measures that accidental loss, and its
milestone rows carry ``train_loss``, so it also measures how trainable a (defended) model still is on benign
data.

Data: instructions from ``data`` (default: the built-in harmless training split) answered by
- ``responses: reference``: the set's own reference answers (the built-in harmless set has one per prompt; a
  user file names its answer column with ``?reference=COLUMN``, e.g.
  ``json:alpaca.json?column=instruction&reference=output&kind=harmless``);
- ``responses: self-distilled``: the attacked model's own greedy answers (generated once and cached), for
  files that hold instructions only, such as the Alpaca-derived ``alpaca_harmless_train.json``
  (``json:$TAMPERLAB_SHARED_DATA/harmless/alpaca_harmless_train.json?column=instruction&kind=harmless``);
- ``responses: auto`` (default): references when every prompt has one, else self-distilled answers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from tamperlab.attacks.base import ATTACKS, Attack, AttackContext, MilestoneCallback
from tamperlab.attacks.sft import SftArgs, describe_sft, run_sft
from tamperlab.config import DataRef
from tamperlab.errors import ConfigError
from tamperlab.train.examples import ChatExample

log = logging.getLogger(__name__)


class BenignSftArgs(SftArgs):
    """Benign instruction fine-tuning: a TrainSpec plus its instructions and where their answers come from."""

    data: DataRef = Field(
        default=DataRef(source="builtin:harmless", split="train"),
        description="Harmless instructions (never the evaluation's test split); any prompt set source.",
    )
    responses: Literal["auto", "reference", "self-distilled"] = Field(
        default="auto",
        description="'reference' answers from the set, 'self-distilled' answers of the attacked model, or "
        "'auto' (references when every prompt has one).",
    )
    n_examples: int | None = Field(
        default=None, ge=1, description="Use at most this many distinct examples (the first N of the set)."
    )
    answer_tokens: int = Field(default=96, ge=8, description="Length limit of self-distilled answers.")


class BenignSft(Attack):
    """Fine-tune on harmless instructions and benign answers."""

    full_trajectory = True  # its training loss at every milestone is trainability, broken or not

    def __init__(self, args: BenignSftArgs) -> None:
        self.args = args
        self.label = f"benign-sft-{args.mode}"
        self._prompts: list[Any] | None = None

    def prompts(self) -> list[Any]:
        """The instructions trained on (first ``n_examples`` of the set)."""
        if self._prompts is None:
            from tamperlab.data.sets import load_prompt_set

            self._prompts = list(load_prompt_set(self.args.data).prompts)[: self.args.n_examples]
            if not self._prompts:
                raise ConfigError(
                    f"{self.label}: the data set {self.args.data.source} ({self.args.data.split}) is empty"
                )
        return self._prompts

    def responses(self) -> str:
        """'reference' or 'self-distilled': what this attack's answers actually are."""
        if self.args.responses != "auto":
            if self.args.responses == "reference" and not all(p.reference for p in self.prompts()):
                raise ConfigError(
                    f"{self.label}: responses=reference but {self.args.data.source} has prompts without a "
                    "reference answer (name its answer column with ?reference=COLUMN, or use "
                    "responses=self-distilled)"
                )
            return self.args.responses
        return "reference" if all(p.reference for p in self.prompts()) else "self-distilled"

    def examples(self, loaded: Any) -> list[ChatExample]:
        """Training conversations; self-distilled answers come from ``loaded`` (the attacked model)."""
        prompts = self.prompts()
        if self.responses() == "reference":
            return [ChatExample.from_pair(p.text, p.reference) for p in prompts]
        from tamperlab.defenses.safety_sft import trim_to_sentence
        from tamperlab.evals.generation import cached_generate

        texts = [p.text for p in prompts]
        answers = cached_generate(
            loaded,
            texts,
            purpose="self-distilled answers (benign-sft)",
            max_new_tokens=self.args.answer_tokens,
            description="benign-sft data: self-distilled answers",
        )
        # An answer cut at the length limit would teach the model to stop mid-sentence.
        pairs = [(p, trim_to_sentence(a)) for p, a in zip(texts, answers, strict=True)]
        kept = [ChatExample.from_pair(p, a) for p, a in pairs if a]
        log.info(
            "benign-sft: %d of %d self-distilled answers kept (empty ones dropped)", len(kept), len(pairs)
        )
        if not kept:
            raise ConfigError(f"{self.label}: every self-distilled answer was empty")
        return kept

    def describe_data(self, ctx: AttackContext) -> dict[str, Any]:
        responses = self.responses()
        how = (
            "reference answers of the set"
            if responses == "reference"
            else "the attacked model's own greedy answers (self-distilled)"
        )
        return describe_sft(
            self.args,
            source=f"{self.args.data.source} ({self.args.data.split}) with {how}",
            distinct_examples=len(self.prompts()),
            responses=responses,
            harmful_content="none: harmless instructions and benign answers only",
        )

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
            loaded,
            self.examples(loaded),
            self.args,
            seed=seed,
            milestones=milestones,
            on_milestone=on_milestone,
        )


@ATTACKS.register("benign-sft", args_model=BenignSftArgs)
def benign_sft(args: BenignSftArgs) -> BenignSft:
    return BenignSft(args)
