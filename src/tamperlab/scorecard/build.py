"""``build_scorecard``: the one entry point behind ``tamperlab scorecard``.

Everything is validated before anything is written: the rubric, the evidence against the rubric, every run the
evidence names against the store, every measured figure. Only then is the site rendered into a temporary
folder beside the output and moved into place, so a failed build never leaves a half-written or stale-mixed
site.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date as Date
from pathlib import Path
from typing import Any

from tamperlab.errors import ConfigError, StoreError
from tamperlab.scorecard.evidence import Evidence, load_evidence, route_of
from tamperlab.scorecard.loading import fail
from tamperlab.scorecard.measures import Figure, MeasureUnavailable, compute
from tamperlab.scorecard.rubric import MeasuredRoute, Rubric, load_rubric
from tamperlab.scorecard.scoring import (
    FORMAT_VERSION,
    FORMULA,
    FORMULA_NOTE,
    CellResult,
    category_scores,
    ranking,
    score_cell,
    sensitivity,
    snapshot_id,
    total_score,
)
from tamperlab.scorecard.site import render_csv, render_json, render_pages
from tamperlab.store import Store, open_store

log = logging.getLogger(__name__)

SITE_MARKER = "scorecard.json"


@dataclass(frozen=True)
class ScorecardResult:
    """What a build produced.

    Attributes:
        out_dir: the site folder.
        snapshot_id: deterministic id of the inputs (``sc-`` + 16 hex digits).
        date: the snapshot's date (ISO), from the evidence file or the explicit ``date``.
        totals: subject id -> total score (0–100).
        ranking: subject ids best first, ties grouped.
        files: the files written, relative to ``out_dir``.
        document: the full ``scorecard.json`` content.
    """

    out_dir: Path
    snapshot_id: str
    date: str
    totals: dict[str, float]
    ranking: list[list[str]]
    files: list[str]
    document: dict[str, Any]


def _parse_date(value: str | Date) -> Date:
    if isinstance(value, Date):
        return value
    try:
        return Date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--date: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _run_model(run: dict[str, Any]) -> str | None:
    return ((run.get("spec") or {}).get("model") or {}).get("name")


def _resolve_run(store: Store, ref: str, model: str | None = None) -> dict[str, Any]:
    """A run from an id, a unique prefix, or 'latest': the newest complete run of kind 'run' of the subject's
    ``model``. A run is only scored as the subject when it measured the subject's model: 'latest' alone could
    pick any run in the store (a search trial on a random-weight model, say) and score it as the subject."""
    if ref == "latest":
        if model is None:
            raise StoreError(
                "run 'latest' needs the subject's model (model: NAME) to pick that model's newest complete"
                " run; or pin a run id"
            )
        runs = [r for r in store.list_runs("run") if r["status"] == "complete" and _run_model(r) == model]
        if not runs:
            raise StoreError(f"no complete run of kind 'run' of model {model!r} in {store.path}")
        return runs[-1]
    run = store.find_run(ref)
    if run["status"] != "complete":
        raise StoreError(f"run {run['run_id']} is {run['status']}, not complete")
    if model is not None and _run_model(run) != model:
        raise StoreError(
            f"run {run['run_id']} measured model {_run_model(run)!r}, not the subject's model {model!r}"
        )
    return run


def _measure_everything(
    rubric: Rubric, evidence: Evidence, evidence_path: Path, store_path: str | None
) -> tuple[dict[str, Figure], dict[str, str]]:
    """Resolve every measured item's run and compute its figure; keys are ``subject/criterion/index``."""
    measured = [
        (si, subject, crit_id, ii, item)
        for si, subject in enumerate(evidence.subjects)
        for crit_id, items in subject.cells.items()
        for ii, item in enumerate(items)
        if item.state == "measured"
    ]
    figures: dict[str, Figure] = {}
    runs: dict[str, str] = {}
    if not measured:
        return figures, runs
    first = measured[0]
    try:
        store = open_store(store_path, readonly=True)
    except StoreError as exc:
        loc = ["subjects", first[0], "cells", first[2], first[3]]
        raise fail(evidence_path, loc, f"measured evidence needs a store: {exc}") from None
    try:
        resolved: dict[str, dict[str, Any]] = {}
        for si, subject, crit_id, ii, item in measured:
            loc: list[Any] = ["subjects", si, "cells", crit_id, ii]
            ref = item.run or subject.run
            ref_loc = [*loc, "run"] if item.run else ["subjects", si, "run"]
            assert ref is not None
            key = f"{ref}|{subject.model}"
            if key not in resolved:
                try:
                    resolved[key] = _resolve_run(store, ref, subject.model)
                except StoreError as exc:
                    raise fail(evidence_path, ref_loc, str(exc)) from None
            run = resolved[key]
            crit = rubric.criterion(crit_id)
            route = route_of(item, crit)
            assert isinstance(route, MeasuredRoute)
            variant = item.variant or subject.variant
            assert variant is not None
            try:
                figure = compute(route.measure, route.args, store, run["run_id"], variant)
            except MeasureUnavailable as exc:
                raise fail(
                    evidence_path, loc, f"measure {route.measure!r} cannot be computed: {exc}"
                ) from None
            finished = run.get("finished_at") or run.get("created_at")
            key = f"{subject.id}/{crit_id}/{ii}"
            figures[key] = dataclasses.replace(figure, date=finished[:10] if finished else None)
            runs[key] = run["run_id"]
    finally:
        store.close()
    return figures, runs


def _computation(rubric: Rubric, cells: dict[str, CellResult], cat_id: str) -> str:
    cat = next(c for c in rubric.categories if c.id == cat_id)
    scored = [c for c in cat.criteria if c.weight > 0 and cells[c.id].assessed]
    if not scored:
        return "no scored criteria"
    terms = " + ".join(f"{c.weight:g} × {cells[c.id].level}/{cells[c.id].max_level}" for c in scored)
    total_w = sum(c.weight for c in scored)
    value = sum(c.weight * cells[c.id].fraction for c in scored) / total_w
    return f"({terms}) ÷ {total_w:g} = {100 * value:.1f}"


def _total_computation(rubric: Rubric, cats: dict[str, float | None]) -> str:
    scored = [c for c in rubric.categories if c.weight > 0 and cats[c.id] is not None]
    terms = " + ".join(f"{c.weight:g} × {100 * cats[c.id]:.1f}" for c in scored)
    total_w = sum(c.weight for c in scored)
    value = sum(c.weight * cats[c.id] for c in scored) / total_w
    return f"({terms}) ÷ {total_w:g} = {100 * value:.1f}"


def _document(
    rubric: Rubric,
    evidence: Evidence,
    cells: dict[str, dict[str, CellResult]],
    snap: str,
) -> dict[str, Any]:
    order = [s.id for s in evidence.subjects]
    # A not-assessed cell has no fraction: it is left out of both sums.
    fractions = {s: {k: c.fraction if c.assessed else None for k, c in cells[s].items()} for s in order}
    totals = {s: total_score(rubric, fractions[s]) for s in order}
    rank = ranking(totals, order)
    rank_of: dict[str, int] = {}  # competition ranking: two subjects tied first are both 1, the next is 3
    place = 1
    for group in rank:
        for s in group:
            rank_of[s] = place
        place += len(group)
    subjects = []
    for subject in evidence.subjects:
        cats = category_scores(rubric, fractions[subject.id])
        subjects.append(
            {
                "id": subject.id,
                "name": subject.name,
                "kind": subject.kind,
                "example": subject.example,
                "description": subject.description,
                "total": round(100 * totals[subject.id], 6),
                "rank": rank_of[subject.id],
                "categories": {k: None if v is None else round(100 * v, 6) for k, v in cats.items()},
                "total_computation": _total_computation(rubric, cats),
                "computation": {
                    cat.id: _computation(rubric, cells[subject.id], cat.id) for cat in rubric.categories
                },
            }
        )
    total_terms = " + ".join(f"{c.weight:g} × S[{c.id}]" for c in rubric.categories if c.weight > 0)
    total_w = sum(c.weight for c in rubric.categories)
    return {
        "format": FORMAT_VERSION,
        "snapshot": {
            "id": snap,
            "date": evidence.date.isoformat(),
            "title": evidence.title or rubric.title,
            "note": evidence.note,
            "rubric": {"id": rubric.id, "version": rubric.version, "title": rubric.title},
        },
        "formula": {
            "lines": [{"name": n, "formula": f} for n, f in FORMULA],
            "note": FORMULA_NOTE,
            "total": f"T = ({total_terms}) ÷ {total_w:g}",
        },
        "rubric": rubric.model_dump(mode="json"),
        "subjects": subjects,
        "ranking": rank,
        "cells": [cells[s.id][c.id].to_json() for s in evidence.subjects for _, c in rubric.criteria()],
        "sensitivity": sensitivity(rubric, fractions, order),
    }


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConfigError(f"--out: {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / SITE_MARKER).is_file():
            raise ConfigError(
                f"--out: {out_dir} is not empty and holds no {SITE_MARKER}; refusing to replace a folder "
                "that is not a scorecard site"
            )


def _write_atomically(out_dir: Path, files: dict[str, str]) -> None:
    """Write into a temporary sibling folder, then swap it in place of ``out_dir``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            old.rmdir()
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_scorecard(
    rubric_path: str | Path,
    evidence_path: str | Path,
    store_path: str | Path | None,
    out_dir: str | Path,
    *,
    date: str | Date | None = None,
) -> ScorecardResult:
    """Validate a rubric and its evidence, compute every cell and write the static site.

    Args:
        rubric_path: the rubric YAML.
        evidence_path: the evidence YAML (its ``date`` is the snapshot's date).
        store_path: the store measured items are read from; None uses the default store (only opened when the
            evidence has measured items).
        out_dir: the site folder: created, or replaced when it holds a previous scorecard site.
        date: overrides the evidence file's date (``--date``); the clock is never read.

    Returns:
        The snapshot id, date, totals, ranking and files written.

    Raises:
        ConfigError: any problem in the inputs, naming the file and the place; nothing is written.
    """
    rubric_path, evidence_path, out_dir = Path(rubric_path), Path(evidence_path), Path(out_dir)
    rubric = load_rubric(rubric_path)
    evidence = load_evidence(evidence_path, rubric)
    if date is not None:
        evidence = evidence.model_copy(update={"date": _parse_date(date)})
    _check_out_dir(out_dir)
    figures, runs = _measure_everything(
        rubric, evidence, evidence_path, str(store_path) if store_path else None
    )

    cells: dict[str, dict[str, CellResult]] = {}
    for subject in evidence.subjects:
        cells[subject.id] = {}
        for cat, crit in rubric.criteria():
            # "Nothing found" is dated by the snapshot it was looked for in, unless the item says otherwise.
            items = [
                i.model_copy(update={"date": evidence.date}) if i.state == "none" and i.date is None else i
                for i in subject.cells[crit.id]
            ]
            key = f"{subject.id}/{crit.id}"
            figs = {i: figures[f"{key}/{i}"] for i in range(len(items)) if f"{key}/{i}" in figures}
            run_ids = {i: runs[f"{key}/{i}"] for i in range(len(items)) if f"{key}/{i}" in runs}
            cells[subject.id][crit.id] = score_cell(subject.id, cat, crit, items, figs, run_ids)

    later = sorted(
        d
        for d in [f.date for f in figures.values()]
        + [str(i.date) for s in evidence.subjects for items in s.cells.values() for i in items if i.date]
        if d and d > evidence.date.isoformat()
    )
    if later:
        # Not an error: the shipped example has a fixed date and measures whatever run the store holds.
        log.warning(
            "%d evidence items are dated after the snapshot date %s (latest %s); pass --date to re-date it",
            len(later),
            evidence.date.isoformat(),
            later[-1],
        )
    snap = snapshot_id(rubric, evidence, runs, figures)
    document = _document(rubric, evidence, cells, snap)
    files = render_pages(document)
    files["scorecard.json"] = render_json(document)
    files["scorecard.csv"] = render_csv(document)
    _write_atomically(out_dir, files)
    log.info("scorecard %s written to %s (%d files)", snap, out_dir, len(files))
    return ScorecardResult(
        out_dir=out_dir,
        snapshot_id=snap,
        date=document["snapshot"]["date"],
        totals={s["id"]: s["total"] for s in document["subjects"]},
        ranking=document["ranking"],
        files=sorted(files),
        document=document,
    )
