"""The attack protocol: modify a model along a budget trajectory, reporting milestones as it goes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tamperlab.config import ModelSpec
from tamperlab.registry import Registry

MilestoneCallback = Callable[[Any, Any], None]
"""``on_milestone(budget, model)`` with a :class:`tamperlab.train.loop.Budget` and the model at that
budget."""


@dataclass(frozen=True)
class AttackContext:
    """What an attack may use besides the model it attacks.

    Attributes:
        unaligned: the model before any safeguard; its own completions to harmful requests are attack data
            (so tamperlab never ships harmful content: it is generated locally by the model being studied).
    """

    unaligned: ModelSpec


class Attack(Protocol):
    """A registered attack. ``label`` names it in arms (e.g. ``harmful-sft-lora``).

    An attack whose trajectory measures more than its break cost (benign-sft's training loss is trainability)
    sets a class attribute ``full_trajectory = True``, so the run evaluates every milestone even after it
    breaks; others end at the milestone that breaks them (``break_cost.stop_when_broken``). A one-shot
    modification (a prompt change or a weight edit: milestones 0 and 1 only) sets ``one_shot = True``: there
    is no half of an edit, so its break cost is the edit's budget, never interpolated between 0 and 1.
    """

    label: str

    def describe_data(self, ctx: AttackContext) -> dict[str, Any]:
        """The attack data: source, number of distinct examples, template, effective batch."""
        ...

    def run(
        self,
        loaded: Any,
        ctx: AttackContext,
        *,
        seed: int,
        milestones: Sequence[int],
        on_milestone: MilestoneCallback,
    ) -> None:
        """Attack ``loaded`` (a LoadedModel, modified in place), calling ``on_milestone`` at each
        milestone."""
        ...


ATTACKS: Registry[Attack] = Registry("attack")


def build_attack(name: str, args: dict[str, Any] | None = None) -> Attack:
    """Build a registered attack by name (importing the built-in attacks first)."""
    import tamperlab.attacks.builtin  # noqa: F401  (registers the built-in attacks)

    return ATTACKS.build(name, args)
