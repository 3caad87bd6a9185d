"""Milestones of a one-shot modification (a weight edit or a prompt change) rather than a training trajectory.

Such an attack has two points on the budget axis whatever milestones the run declares: step 0, the unmodified
model (the pipeline re-uses its stored evaluation), and step 1, meaning "the one edit applied", with the
budget the edit actually spent in the same units as training (examples and tokens put through the model, FLOPs
of the forward passes it ran, wall seconds). Training attacks count ``steps`` as optimizer updates; here a
step is one edit, so break costs compare on FLOPs, examples and seconds, not on steps. Such an attack class
sets ``one_shot = True``: its break cost is the budget of step 1 when step 1 breaks, never a fraction of the
edit interpolated between step 0 and step 1 (a prompt change spends nothing at all: "0.5 steps" would be
false).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tamperlab.attacks.base import MilestoneCallback


@dataclass
class EditCost:
    """What a one-shot edit spent: examples and tokens through forward passes, and their FLOPs."""

    examples: int = 0
    tokens: int = 0
    flops: int = 0


def budget(steps: int, cost: EditCost | None = None, seconds: float = 0.0) -> Any:
    """A :class:`tamperlab.train.loop.Budget` for step 0 (nothing spent) or step 1 (the edit's cost)."""
    from tamperlab.train.loop import Budget

    cost = cost or EditCost()
    return Budget(steps=steps, examples=cost.examples, tokens=cost.tokens, flops=cost.flops, seconds=seconds)


def run_one_shot(loaded: Any, on_milestone: MilestoneCallback, edit: Callable[[], EditCost] | None) -> None:
    """Fire step 0, apply ``edit`` (timed, wall seconds), then fire step 1 with its cost.

    Args:
        loaded: the LoadedModel attacked (edited in place by ``edit``).
        edit: applies the modification and returns what it spent; None for a prompt-only attack, whose step 1
            costs exactly nothing (0 seconds included).
    """
    on_milestone(budget(0), loaded.model)
    if edit is None:
        on_milestone(budget(1), loaded.model)
        return
    started = time.perf_counter()
    cost = edit()
    if next(loaded.model.parameters()).device.type == "cuda":
        import torch

        torch.cuda.synchronize()
    on_milestone(budget(1, cost, time.perf_counter() - started), loaded.model)
