"""The defense protocol: turn a model into a (more) safeguarded one, recording what it cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tamperlab.registry import Registry


@dataclass
class DefenseOutcome:
    """A defended model and its cost.

    Attributes:
        model: the defended model (a plain causal LM, adapters merged).
        budget: what the defense spent: {steps, examples, tokens, flops, seconds}.
        data: where its training data came from and how much of it there was.
    """

    model: Any
    budget: dict[str, float]
    data: dict[str, Any]


class Defense(Protocol):
    """A registered defense; ``label`` names it in arms and in the model cache.

    A defense may set ``version`` (a string) and change it when its recipe changes in ways its args do not
    show: the cache key of a defended model includes it, so an old cached model is not reused. Components
    subclass this protocol, so ``version`` defaults to None and callers read it directly.
    """

    label: str
    version: str | None = None

    def apply(self, loaded: Any) -> DefenseOutcome:
        """Defend ``loaded`` (a LoadedModel; may be modified in place)."""
        ...


DEFENSES: Registry[Defense] = Registry(
    "defense", builtins="tamperlab.defenses.builtin", entry_points="tamperlab.defenses"
)


def build_defense(name: str, args: dict[str, Any] | None = None) -> Defense:
    """Build a registered defense by name."""
    return DEFENSES.build(name, args)
