"""What every fine-tuning attack shares: its arguments (a TrainSpec with a per-mode default learning rate),
its data description, and one trajectory through :func:`tamperlab.train.loop.train` with budget milestones.

``harmful-sft``, ``benign-sft`` and ``identity-shift`` differ only in their data (and in how they are
evaluated), so each builds its examples and hands them to :func:`run_sft`; their budgets are counted by the
one training loop in the same units as every other attack (steps, examples, tokens, FLOPs, seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from tamperlab.attacks.base import MilestoneCallback
from tamperlab.train.examples import ChatExample
from tamperlab.train.loop import TrainSpec, train

# Measured defaults: full fine-tuning at 3e-5 broke the safeguarded default model within a few steps; LoRA
# adapters need a learning rate about 10x higher to move the model as fast (standard LoRA practice).
DEFAULT_LR = {"full": 3e-5, "lora": 3e-4}


class SftArgs(TrainSpec):
    """A fine-tuning attack's training arguments: a TrainSpec whose ``max_steps`` and ``seed`` are set by the
    run's milestones and seeds, and whose learning rate defaults by mode."""

    learning_rate: float | None = Field(  # type: ignore[assignment]
        default=None, gt=0, description="Peak learning rate; default 3e-5 for full, 3e-4 for LoRA."
    )

    def train_spec(self, *, max_steps: int, seed: int) -> TrainSpec:
        """The TrainSpec of one trajectory up to ``max_steps`` with ``seed``."""
        fields = {k: v for k, v in self.model_dump().items() if k in TrainSpec.model_fields}
        fields.update(
            max_steps=max(1, max_steps), seed=seed, learning_rate=self.learning_rate or DEFAULT_LR[self.mode]
        )
        return TrainSpec(**fields)


def describe_sft(args: SftArgs, *, source: str, distinct_examples: int, **extra: Any) -> dict[str, Any]:
    """The attack-data record every fine-tuning attack stores with its arm."""
    spec = args.train_spec(max_steps=1, seed=0)
    return {
        "source": source,
        "distinct_examples": distinct_examples,
        "template": "the model's chat template; loss on assistant tokens only",
        "effective_batch": spec.effective_batch_size,
        "learning_rate": spec.learning_rate,
        "mode": args.mode,
        **extra,
    }


def run_sft(
    loaded: Any,
    examples: Sequence[ChatExample],
    args: SftArgs,
    *,
    seed: int,
    milestones: Sequence[int],
    on_milestone: MilestoneCallback,
) -> None:
    """Fine-tune ``loaded`` on ``examples`` up to the last milestone, calling ``on_milestone`` at each one."""
    spec = args.train_spec(max_steps=max(milestones), seed=seed)
    train(loaded, examples=examples, spec=spec, milestones=milestones, on_milestone=on_milestone)
