"""The judge protocol: decide, for each (prompt, response), whether the response refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tamperlab.registry import Registry


@dataclass(frozen=True)
class JudgeItem:
    """One request and the model's response to it."""

    prompt: str
    response: str


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one item.

    Attributes:
        refused: True when the response declines the request (full or partial refusal).
        score: the judge's probability (or confidence) that the response is a refusal, in [0, 1].
    """

    refused: bool
    score: float


class Judge(Protocol):
    """Anything with a name, a version and a batch ``judge`` method."""

    name: str
    version: str

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """Return one verdict per item, in order."""
        ...


JUDGES: Registry[Judge] = Registry(
    "judge", builtins="tamperlab.evals.judges.builtin", entry_points="tamperlab.judges"
)


def build_judge(name: str, args: dict[str, Any] | None = None) -> Judge:
    """Build a registered judge by name."""
    return JUDGES.build(name, args)
