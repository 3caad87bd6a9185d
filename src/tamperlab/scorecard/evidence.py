"""The evidence file: for each subject (a model or a developer), one cell per rubric criterion.

A cell is a list of evidence items, each in one labelled state:

- ``measured``: a run in the store; the figure is computed by the criterion's measured route (the item names
  ``run`` and ``variant``, or inherits the subject's: which model of the run is the subject, see
  :mod:`tamperlab.scorecard.measures`);
- ``committed``: a published commitment: ``sources``, a verbatim ``quote``, the ``date``, the assessor's
  ``level``, and (where the route requires it) the ``threshold`` it names and the ``consequence`` past it;
- ``claimed``: a statement without evidence: ``quote``, ``date``, the assessor's ``level``;
- ``none``: nothing found; a ``note`` says what was looked at. It earns level 0.
- ``not-assessed``: the criterion does not apply to this subject or was not looked at (a developer's practice
  for a model measured locally); a ``note`` says why. The cell is left out of the score: it counts in neither
  the numerator nor the denominator, so it is never a silent 0. It must be the cell's only item.

Every criterion needs a cell (``state: none`` says "looked, nothing there"), so a forgotten cell is an error,
never a silent zero. Every item may carry ``right_of_reply``: the subject's response, printed beside it.

Example::

    rubric: modification-readiness
    date: 2025-06-01
    subjects:
      - id: example-developer-a
        name: Example Developer A
        kind: developer
        example: true
        run: latest
        model: smollm2-135m-instruct
        variant: undefended
        cells:
          break-cost:
            - state: measured
          stop-threshold:
            - state: committed
              route: stop-threshold
              level: 3
              sources: ["Example release policy v1, section 2"]
              quote: "We will not release weights whose break cost is below 1e15 FLOPs."
              threshold: break cost below 1e15 FLOPs
              consequence: weights are not released
              date: 2025-05-01
"""

from __future__ import annotations

from datetime import date as Date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tamperlab.config import Spec
from tamperlab.scorecard.loading import fail, read_yaml_mapping, validate_file
from tamperlab.scorecard.rubric import ClaimedRoute, CommittedRoute, MeasuredRoute, Rubric
from tamperlab.scorecard.rubric import Id as SubjectId

State = Literal["measured", "committed", "claimed", "none", "not-assessed"]
STATES: tuple[str, ...] = ("measured", "committed", "claimed", "none", "not-assessed")


class EvidenceItem(Spec):
    """One piece of evidence for one cell."""

    state: State = Field(description="measured | committed | claimed | none | not-assessed.")
    route: str | None = Field(
        default=None, description="Which award route it is for, when several accept its state."
    )
    level: int | None = Field(
        default=None, description="The assessor's level from the written levels (committed and claimed only)."
    )
    run: str | None = Field(
        default=None,
        description="Measured: a run id, a unique prefix, or 'latest' (the subject model's newest complete"
        " run).",
    )
    variant: str | None = Field(
        default=None,
        description="Measured: the run's model measured: 'base', 'undefended', a defense name, or 'all'.",
    )
    sources: list[str] = Field(default_factory=list, description="Documents or links the item rests on.")
    quote: str | None = Field(default=None, description="Verbatim quote of the commitment or claim.")
    threshold: str | None = Field(default=None, description="Committed: the threshold the commitment names.")
    consequence: str | None = Field(default=None, description="Committed: what happens past the threshold.")
    date: Date | None = Field(default=None, description="When it was published (measured: the run's date).")
    right_of_reply: str | None = Field(default=None, description="The subject's response, printed beside it.")
    note: str = Field(
        default="", description="Assessor's note; required for state none (what was looked at)."
    )


class Subject(Spec):
    """A model or developer being scored."""

    id: SubjectId = Field(description="Unique in the file.")
    name: str = Field(min_length=1, description="Shown on the site.")
    kind: Literal["model", "developer"] = Field(description="A measured model, or a developer's practices.")
    example: bool = Field(default=False, description="Illustrative evidence, not about a real party.")
    description: str = Field(default="")
    run: str | None = Field(default=None, description="Default run for this subject's measured items.")
    model: str | None = Field(
        default=None,
        description="The model its runs must have measured (the run spec's model.name); required with run"
        " 'latest', which then means that model's newest complete run.",
    )
    variant: str | None = Field(
        default=None, description="Default variant for this subject's measured items."
    )
    cells: dict[str, list[EvidenceItem]] = Field(description="criterion id -> evidence items (at least one).")


class Evidence(Spec):
    """A whole evidence file."""

    rubric: str = Field(min_length=1, description="The id of the rubric this evidence is for.")
    rubric_version: str | None = Field(default=None, description="If given, must equal the rubric's version.")
    title: str = Field(default="", description="Title of the snapshot, for the site.")
    date: Date = Field(description="The snapshot's date (the site never reads the clock).")
    note: str = Field(default="", description="Printed at the top of the site (e.g. 'example evidence').")
    subjects: list[Subject] = Field(min_length=1)


def _route_for(item: EvidenceItem, crit: Any, source: Path, loc: list[Any]):
    routes = [r for r in crit.award if r.state == item.state]
    if item.route is not None:
        route = crit.route(item.route)
        if route is None:
            known = ", ".join(r.id for r in crit.award)
            raise fail(
                source,
                [*loc, "route"],
                f"criterion {crit.id!r} has no route {item.route!r} (routes: {known})",
            )
        if route.state != item.state:
            raise fail(
                source,
                [*loc, "route"],
                f"route {route.id!r} accepts {route.state} evidence, not {item.state}",
            )
        return route
    if not routes:
        accepted = ", ".join(sorted({r.state for r in crit.award}))
        raise fail(
            source,
            [*loc, "state"],
            f"criterion {crit.id!r} awards nothing for {item.state} evidence (it accepts: {accepted})",
        )
    if len(routes) > 1:
        ids = ", ".join(r.id for r in routes)
        raise fail(
            source,
            [*loc, "route"],
            f"criterion {crit.id!r} has several {item.state} routes ({ids}): name one",
        )
    return routes[0]


def _require(item: EvidenceItem, names: list[str], source: Path, loc: list[Any], why: str) -> None:
    for name in names:
        value = getattr(item, name)
        if value is None or value == "" or value == []:
            raise fail(source, [*loc, name], f"required for {why}")


def route_of(item: EvidenceItem, crit: Any) -> MeasuredRoute | CommittedRoute | ClaimedRoute | None:
    """The route an already checked item is scored on (None for states none and not-assessed)."""
    if item.state in ("none", "not-assessed"):
        return None
    if item.route is not None:
        return crit.route(item.route)
    return next(r for r in crit.award if r.state == item.state)


def _check_item(item: EvidenceItem, subject: Subject, crit: Any, source: Path, loc: list[Any]) -> None:
    if item.state in ("none", "not-assessed"):
        what = "that nothing was found" if item.state == "none" else "that the cell is not assessed"
        for name in ("level", "route", "run", "variant", "quote", "threshold", "consequence"):
            if getattr(item, name) is not None:
                raise fail(source, [*loc, name], f"not allowed on a {item.state!r} item (it records {what})")
        why = "say what was looked at" if item.state == "none" else "say why it is not assessed"
        _require(item, ["note"], source, loc, f"a {item.state!r} item: {why}")
        return
    route = _route_for(item, crit, source, loc)
    if item.state == "measured":
        if item.level is not None:
            raise fail(source, [*loc, "level"], "a measured item's level comes from its figure; remove level")
        if (item.run or subject.run) is None:
            raise fail(
                source, [*loc, "run"], "a measured item needs a run (set run on the item or the subject)"
            )
        if (item.variant or subject.variant) is None:
            raise fail(
                source,
                [*loc, "variant"],
                "a measured item needs the variant it measures (on the item or the subject): 'base', "
                "'undefended', a defense name, or 'all'",
            )
        return
    if item.level is None:
        raise fail(
            source, [*loc, "level"], f"required for {item.state} evidence: the level the assessor awards"
        )
    if not 0 <= item.level <= crit.max_level:
        raise fail(source, [*loc, "level"], f"level {item.level} is out of range 0..{crit.max_level}")
    assert isinstance(route, CommittedRoute | ClaimedRoute)
    if item.level > route.max_level:
        raise fail(
            source,
            [*loc, "level"],
            f"level {item.level} is above what {item.state} evidence can earn on route {route.id!r} "
            f"(max_level {route.max_level})",
        )
    for name in ("run", "variant"):
        if getattr(item, name) is not None:
            raise fail(source, [*loc, name], f"only measured items name a {name}")
    if item.state == "committed":
        _require(item, ["sources", "quote", "date"], source, loc, "committed evidence")
        if route.require_threshold:
            _require(
                item,
                ["threshold", "consequence"],
                source,
                loc,
                f"route {route.id!r}: a commitment must name a threshold and what happens past it",
            )
    else:
        _require(item, ["quote", "date"], source, loc, "claimed evidence")


def check_evidence(evidence: Evidence, rubric: Rubric, source: str | Path) -> None:
    """Cross-check an evidence file against its rubric (everything that needs no store)."""
    source = Path(source)
    if evidence.rubric != rubric.id:
        raise fail(source, ["rubric"], f"this evidence is for rubric {evidence.rubric!r}, not {rubric.id!r}")
    if evidence.rubric_version is not None and evidence.rubric_version != rubric.version:
        raise fail(
            source,
            ["rubric_version"],
            f"evidence is for version {evidence.rubric_version!r}, rubric is {rubric.version!r}",
        )
    seen: set[str] = set()
    order = [c.id for _, c in rubric.criteria()]
    for si, subject in enumerate(evidence.subjects):
        if subject.id in seen:
            raise fail(source, ["subjects", si, "id"], f"duplicate subject id {subject.id!r}")
        seen.add(subject.id)
        for key in subject.cells:
            if rubric.criterion(key) is None:
                raise fail(
                    source,
                    ["subjects", si, "cells", key],
                    f"unknown criterion {key!r}; {rubric.suggest(key)}",
                )
        for crit_id in order:
            if crit_id not in subject.cells:
                raise fail(
                    source,
                    ["subjects", si, "cells"],
                    f"missing cell for criterion {crit_id!r} (subject {subject.id!r}); every criterion needs "
                    "a cell: use '- state: none' with a note when there is no evidence",
                )
        for crit_id in order:
            items = subject.cells[crit_id]
            if not items:
                raise fail(
                    source,
                    ["subjects", si, "cells", crit_id],
                    "empty cell: add an item ('state: none' if nothing)",
                )
            crit = rubric.criterion(crit_id)
            if len(items) > 1 and any(i.state == "not-assessed" for i in items):
                raise fail(
                    source,
                    ["subjects", si, "cells", crit_id],
                    "a 'not-assessed' item must be the cell's only item (other evidence assesses it)",
                )
            for ii, item in enumerate(items):
                _check_item(item, subject, crit, source, ["subjects", si, "cells", crit_id, ii])


def load_evidence(path: str | Path, rubric: Rubric) -> Evidence:
    """Parse an evidence file and check it against ``rubric``; ConfigError naming the place on any problem."""
    path = Path(path)
    evidence = validate_file(Evidence, read_yaml_mapping(path), path)
    check_evidence(evidence, rubric, path)
    return evidence
