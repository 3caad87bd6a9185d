"""The attack protocol: modify a model along a budget trajectory, reporting milestones as it goes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
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
    is no half of an edit, so its break cost is the edit's budget, never interpolated between 0 and 1. An
    attack that changes how the model is evaluated (a system prompt, a template, a prefill) sets
    ``eval_overrides``, which the run merges into the eval config of every milestone.

    Components subclass this protocol, so the optional attributes below have their defaults and callers read
    them directly.
    """

    label: str
    full_trajectory: bool = False
    one_shot: bool = False
    eval_overrides: Mapping[str, Any] = MappingProxyType({})

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


ATTACKS: Registry[Attack] = Registry(
    "attack", builtins="tamperlab.attacks.builtin", entry_points="tamperlab.attacks"
)


def build_attack(name: str, args: dict[str, Any] | None = None) -> Attack:
    """Build a registered attack by name."""
    return ATTACKS.build(name, args)
