"""The rubric: categories of criteria with weights and stated reasons, written levels and award rules.

A criterion's ``award`` is a list of *routes*; a cell earns the best level any route gives its evidence, so a
list of two routes is the OR rule ("implement it, OR publish a threshold and a plan"). A route accepts one
evidence state:

- ``measured``: a named store query (see :mod:`tamperlab.scorecard.measures`) compared with thresholds; each
  grade maps a threshold to a level, the highest grade met wins, ``otherwise`` when none is.
- ``committed``: a published commitment; by default it must name a threshold and what happens past it
  (``require_threshold: false`` accepts a documented practice without one). The assessor awards a level up to
  ``max_level`` from the written levels.
- ``claimed``: a statement without evidence, awarded up to ``max_level``.

A claim can never outrank a measurement of the same thing: where a criterion has a measured route, a claimed
route may award at most the level a *failed* measurement gets (its ``otherwise``).

Example::

    categories:
      - id: resistance
        title: Tamper resistance
        weight: 2
        reason: The central question of the scorecard.
        criteria:
          - id: break-cost
            title: Measured break cost
            weight: 3
            reason: Compute an attacker must spend is the most direct measure.
            levels: [Breaks below 1e11 FLOPs, ">= 1e11 FLOPs", ">= 1e13 FLOPs", ">= 1e15 FLOPs"]
            award:
              - state: measured
                measure: min_break_cost
                args: {unit: flops}
                compare: ">="
                grades:
                  - {level: 3, threshold: 1e15}
                  - {level: 2, threshold: 1e13}
                  - {level: 1, threshold: 1e11}
              - state: claimed
                max_level: 0
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from tamperlab.config import Spec
from tamperlab.errors import ConfigError
from tamperlab.scorecard.loading import fail, read_yaml_mapping, validate_file
from tamperlab.scorecard.measures import MEASURES

Id = Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Reason = Annotated[str, Field(min_length=1)]


class Grade(Spec):
    """One threshold of a measured route: meeting it earns ``level``."""

    level: int = Field(description="Level awarded when the figure meets the threshold.")
    threshold: float = Field(description="Compared with the measured figure using the route's comparison.")


class MeasuredRoute(Spec):
    """Awards a level from a store query compared with thresholds."""

    state: Literal["measured"]
    id: Id = Field(
        default="measured", description="Route id, unique in the criterion (evidence may name it)."
    )
    description: str = Field(default="", description="What the route rewards, in words, for the site.")
    measure: str = Field(description="A measure name from tamperlab.scorecard.measures.")
    args: dict[str, Any] = Field(default_factory=dict, description="The measure's arguments.")
    compare: Literal[">=", "<="] = Field(description="How the figure is compared with each threshold.")
    grades: list[Grade] = Field(min_length=1, description="Thresholds and the levels they earn.")
    otherwise: int = Field(default=0, description="Level when no grade is met.")


class CommittedRoute(Spec):
    """Awards up to ``max_level`` for a published commitment."""

    state: Literal["committed"]
    id: Id = Field(default="committed", description="Route id, unique in the criterion.")
    description: str = Field(default="", description="What the commitment must say, for the site.")
    max_level: int = Field(description="The most a commitment on this route can earn.")
    require_threshold: bool = Field(
        default=True,
        description="The commitment must name a threshold and what happens past it (false: a documented "
        "practice without a threshold is accepted).",
    )


class ClaimedRoute(Spec):
    """Awards up to ``max_level`` for a statement without evidence."""

    state: Literal["claimed"]
    id: Id = Field(default="claimed", description="Route id, unique in the criterion.")
    description: str = Field(default="", description="What the claim must say, for the site.")
    max_level: int = Field(description="The most a claim on this route can earn.")


Route = Annotated[MeasuredRoute | CommittedRoute | ClaimedRoute, Field(discriminator="state")]


class Criterion(Spec):
    """One scored (or, at weight 0, tracked) criterion."""

    id: Id = Field(description="Unique over the rubric; the evidence file's cells are keyed by it.")
    title: str = Field(min_length=1, description="Short name shown on the site.")
    description: str = Field(default="", description="What the criterion asks, for the site.")
    weight: float = Field(ge=0, description="Relative weight within its category; 0 = tracked, not scored.")
    reason: Reason = Field(description="The stated reason for the weight, printed beside it.")
    levels: list[str] = Field(min_length=2, description="Written levels, lowest first; level i is levels[i].")
    award: list[Route] = Field(min_length=1, description="Routes to a level; the best one wins (OR).")

    @property
    def max_level(self) -> int:
        return len(self.levels) - 1

    def route(self, route_id: str) -> MeasuredRoute | CommittedRoute | ClaimedRoute | None:
        return next((r for r in self.award if r.id == route_id), None)


class Category(Spec):
    """A group of criteria with its own weight."""

    id: Id = Field(description="Unique over the rubric.")
    title: str = Field(min_length=1, description="Shown on the site.")
    description: str = Field(default="", description="For the site.")
    weight: float = Field(ge=0, description="Relative weight of the category in the total; 0 = tracked only.")
    reason: Reason = Field(description="The stated reason for the weight.")
    criteria: list[Criterion] = Field(min_length=1)


class Rubric(Spec):
    """A whole rubric file."""

    id: Id = Field(description="The rubric's id; an evidence file names the rubric it is for.")
    title: str = Field(min_length=1)
    version: str = Field(min_length=1, description="Bumped whenever levels, weights or rules change.")
    description: str = Field(default="")
    categories: list[Category] = Field(min_length=1)

    def criteria(self) -> list[tuple[Category, Criterion]]:
        return [(cat, crit) for cat in self.categories for crit in cat.criteria]

    def criterion(self, criterion_id: str) -> Criterion | None:
        return next((c for _, c in self.criteria() if c.id == criterion_id), None)

    def suggest(self, criterion_id: str) -> str:
        """A 'did you mean' hint for an unknown criterion id."""
        ids = [c.id for _, c in self.criteria()]
        close = difflib.get_close_matches(criterion_id, ids, n=2)
        return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(ids)}"


def _check_level(source: Path, loc: list[Any], level: int, crit: Criterion) -> None:
    if not 0 <= level <= crit.max_level:
        raise fail(
            source,
            loc,
            f"level {level} is out of range 0..{crit.max_level} (criterion has {len(crit.levels)} levels)",
        )


def _check_rubric(rubric: Rubric, source: Path) -> None:
    """What a schema cannot say: unique ids, levels in range, monotone grades, claims below measurements."""
    seen_cat: set[str] = set()
    seen_crit: set[str] = set()
    for ci, cat in enumerate(rubric.categories):
        if cat.id in seen_cat:
            raise fail(source, ["categories", ci, "id"], f"duplicate category id {cat.id!r}")
        seen_cat.add(cat.id)
        if cat.weight > 0 and sum(c.weight for c in cat.criteria) == 0:
            raise fail(
                source,
                ["categories", ci, "weight"],
                "the category has a weight but every criterion in it has weight 0: nothing to score",
            )
        for ki, crit in enumerate(cat.criteria):
            here: list[Any] = ["categories", ci, "criteria", ki]
            if crit.id in seen_crit:
                raise fail(source, [*here, "id"], f"duplicate criterion id {crit.id!r}")
            seen_crit.add(crit.id)
            route_ids: set[str] = set()
            for ri, route in enumerate(crit.award):
                at = [*here, "award", ri]
                if route.id in route_ids:
                    raise fail(source, [*at, "id"], f"duplicate route id {route.id!r}: give each route an id")
                route_ids.add(route.id)
                if isinstance(route, MeasuredRoute):
                    try:
                        MEASURES.validate_args(route.measure, route.args)
                    except ConfigError as exc:
                        raise fail(source, [*at, "measure"], str(exc)) from None
                    _check_level(source, [*at, "otherwise"], route.otherwise, crit)
                    for gi, grade in enumerate(route.grades):
                        _check_level(source, [*at, "grades", gi, "level"], grade.level, crit)
                    ordered = sorted(route.grades, key=lambda g: g.level)
                    for lo, hi in zip(ordered, ordered[1:], strict=False):
                        harder = (
                            hi.threshold >= lo.threshold
                            if route.compare == ">="
                            else hi.threshold <= lo.threshold
                        )
                        if hi.level == lo.level or not harder:
                            raise fail(
                                source,
                                [*at, "grades"],
                                f"grades must have distinct levels and a higher level must need a "
                                f"{'higher' if route.compare == '>=' else 'lower'} threshold "
                                f"(level {lo.level}: {lo.threshold:g}, level {hi.level}: {hi.threshold:g})",
                            )
                    if route.otherwise >= min(g.level for g in route.grades):
                        raise fail(source, [*at, "otherwise"], "must be below every grade's level")
                else:
                    _check_level(source, [*at, "max_level"], route.max_level, crit)
            measured = [r for r in crit.award if isinstance(r, MeasuredRoute)]
            if measured:
                floor = min(r.otherwise for r in measured)
                for ri, route in enumerate(crit.award):
                    if isinstance(route, ClaimedRoute) and route.max_level > floor:
                        raise fail(
                            source,
                            [*here, "award", ri, "max_level"],
                            f"a claim (up to level {route.max_level}) would outrank a failed measurement "
                            f"(level {floor}) of the same criterion; a claim can never outrank a measurement",
                        )
    if sum(c.weight for c in rubric.categories) == 0:
        raise fail(source, ["categories"], "every category has weight 0: nothing to score")


def load_rubric(path: str | Path) -> Rubric:
    """Parse and check a rubric YAML file; ConfigError naming the file and the place on any problem."""
    path = Path(path)
    rubric = validate_file(Rubric, read_yaml_mapping(path), path)
    _check_rubric(rubric, path)
    return rubric
