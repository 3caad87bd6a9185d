"""Scores: levels per cell, weighted sums up the tree, the sensitivity of the ranking, snapshot ids and diffs.

The formula (printed on the site)::

    criterion fraction  f = level / max_level
    category score      S = Σ_criteria (w × f) / Σ_criteria w          (× 100 on the site)
    total               T = Σ_categories (W × S) / Σ_categories W      (× 100 on the site)

Zero weights are tracked, not scored: the cell is shown with its level but adds nothing to either sum. A
cell's level is the best level any of its evidence items reaches on its route (the OR rule); a claim is capped
at the level a measurement of the same cell reached (a claim never outranks a measurement).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from tamperlab.scorecard.evidence import Evidence, EvidenceItem, route_of
from tamperlab.scorecard.measures import Figure, format_number, meets
from tamperlab.scorecard.rubric import Criterion, MeasuredRoute, Rubric

FORMAT_VERSION = 1
COMPARE_SIGNS = {">=": "≥", "<=": "≤"}
SENSITIVITY_FACTORS = (0.5, 1.5)
# Evidence strength, strongest first: breaks ties between items that reach the same level.
STRENGTH = {"measured": 0, "committed": 1, "claimed": 2, "none": 3, "not-assessed": 4}

FORMULA = [
    ("criterion fraction", "f = level ÷ max level"),
    ("category score", "S = Σ (w × f) ÷ Σ w   over the category's criteria   (× 100)"),
    ("total", "T = Σ (W × S) ÷ Σ W   over categories   (× 100)"),
]
FORMULA_NOTE = (
    "w is a criterion's weight, W a category's. A weight of 0 is tracked, not scored: the cell keeps its "
    "level but adds to neither sum. A cell's level is the best its evidence reaches (alternatives are OR'd); "
    "a claim is capped at the level a measurement of the same cell reached."
)


@dataclass
class ItemResult:
    """One evidence item as scored."""

    state: str
    route: str | None
    level: int
    explanation: str
    item: EvidenceItem
    run_ids: list[str] = field(default_factory=list)
    figure: Figure | None = None
    superseded: bool = False

    def to_json(self) -> dict[str, Any]:
        data = {
            "state": self.state,
            "route": self.route,
            "level": self.level,
            "explanation": self.explanation,
            "superseded": self.superseded,
            "run_ids": self.run_ids,
            "figure": self.figure.to_json() if self.figure else None,
            "sources": self.item.sources,
            "quote": self.item.quote,
            "threshold": self.item.threshold,
            "consequence": self.item.consequence,
            "date": self.item.date.isoformat()
            if self.item.date
            else (self.figure.date if self.figure else None),
            "right_of_reply": self.item.right_of_reply,
            "note": self.item.note,
        }
        return data


@dataclass
class CellResult:
    """One subject × criterion cell."""

    subject: str
    category: str
    criterion: str
    weight: float
    category_weight: float
    level: int
    max_level: int
    level_text: str
    state: str
    route: str | None
    items: list[ItemResult]
    deciding: int = 0

    @property
    def fraction(self) -> float:
        return self.level / self.max_level

    @property
    def assessed(self) -> bool:
        """False for a not-assessed cell: left out of both sums, never a 0."""
        return self.state != "not-assessed"

    @property
    def scored(self) -> bool:
        return self.weight > 0 and self.category_weight > 0 and self.assessed

    @property
    def points(self) -> float:
        """w × f: this cell's contribution to its category's numerator."""
        return self.weight * self.fraction

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "category": self.category,
            "criterion": self.criterion,
            "weight": self.weight,
            "category_weight": self.category_weight,
            "scored": self.scored,
            "assessed": self.assessed,
            "level": self.level,
            "max_level": self.max_level,
            "level_text": self.level_text,
            "fraction": _r(self.fraction),
            "points": _r(self.points),
            "state": self.state,
            "route": self.route,
            "deciding_item": self.deciding,
            "items": [i.to_json() for i in self.items],
        }


def _r(x: float | None) -> float | None:
    """Round for the exports so float noise never shows up as a change between snapshots."""
    return None if x is None else round(x, 9)


def measured_level(route: MeasuredRoute, figure: Figure) -> tuple[int, str]:
    """The level a figure earns on a measured route, and why in words."""
    op = COMPARE_SIGNS[route.compare]
    bound = " (the figure is a lower bound: it counts as ≥ its value)" if figure.lower_bound else ""
    met = [g for g in route.grades if meets(figure, route.compare, g.threshold)]
    if met:
        best = max(met, key=lambda g: g.level)
        why = f"meets {op} {format_number(best.threshold)} (level {best.level})"
        higher = [g for g in route.grades if g.level > best.level]
        if higher:
            nxt = min(higher, key=lambda g: g.level)
            why += f"; does not meet {op} {format_number(nxt.threshold)} (level {nxt.level})"
        return best.level, why + bound
    lowest = min(route.grades, key=lambda g: g.level)
    return (
        route.otherwise,
        f"does not meet {op} {format_number(lowest.threshold)}: level {route.otherwise}{bound}",
    )


def score_cell(
    subject_id: str,
    category: Any,
    crit: Criterion,
    items: list[EvidenceItem],
    figures: dict[int, Figure],
    runs: dict[int, str],
) -> CellResult:
    """Score one cell; ``figures``/``runs`` map a measured item's index to its figure and resolved run id."""
    results: list[ItemResult] = []
    for i, item in enumerate(items):
        route = route_of(item, crit)
        if item.state == "none":
            results.append(ItemResult("none", None, 0, "no evidence found: level 0", item))
        elif item.state == "not-assessed":
            why = "not assessed: left out of the score, in neither the numerator nor the denominator"
            results.append(ItemResult("not-assessed", None, 0, why, item))
        elif isinstance(route, MeasuredRoute):
            level, why = measured_level(route, figures[i])
            results.append(ItemResult("measured", route.id, level, why, item, [runs[i]], figures[i]))
        else:
            assert item.level is not None and route is not None
            why = f"assessed level {item.level} (this route awards at most {route.max_level})"
            results.append(ItemResult(item.state, route.id, item.level, why, item))
    measured = [r.level for r in results if r.state == "measured"]
    if measured:
        # The rubric check already keeps a claim at or below a failed measurement; this holds it per cell too.
        cap = max(measured)
        for r in results:
            if r.state == "claimed":
                r.superseded = True
                if r.level > cap:
                    r.level = cap
                    r.explanation += f"; capped at {cap}"
                r.explanation += "; superseded: a measurement of the same thing decides this cell"
    deciding = min(range(len(results)), key=lambda i: (-results[i].level, STRENGTH[results[i].state], i))
    best = results[deciding]
    return CellResult(
        subject=subject_id,
        category=category.id,
        criterion=crit.id,
        weight=crit.weight,
        category_weight=category.weight,
        level=best.level,
        max_level=crit.max_level,
        level_text=crit.levels[best.level],
        state=best.state,
        route=best.route,
        items=results,
        deciding=deciding,
    )


def category_scores(
    rubric: Rubric, fractions: dict[str, float | None], crit_weights: dict[str, float] | None = None
) -> dict[str, float | None]:
    """S per category for one subject (None when its assessed criteria weigh 0 in total). A fraction of None
    is a not-assessed cell: it counts in neither the numerator nor the denominator."""
    out: dict[str, float | None] = {}
    for cat in rubric.categories:
        pairs = [
            ((crit_weights or {}).get(c.id, c.weight), fractions[c.id])
            for c in cat.criteria
            if fractions[c.id] is not None
        ]
        total_w = sum(w for w, _ in pairs)
        out[cat.id] = None if total_w == 0 else sum(w * f for w, f in pairs) / total_w  # type: ignore[operator]
    return out


def total_score(
    rubric: Rubric,
    fractions: dict[str, float | None],
    cat_weights: dict[str, float] | None = None,
    crit_weights: dict[str, float] | None = None,
) -> float:
    """T for one subject, as a fraction (the site shows × 100)."""
    scores = category_scores(rubric, fractions, crit_weights)
    num = den = 0.0
    for cat in rubric.categories:
        weight = (cat_weights or {}).get(cat.id, cat.weight)
        if weight > 0 and scores[cat.id] is not None:
            num += weight * scores[cat.id]
            den += weight
    return num / den if den else 0.0


def ranking(totals: dict[str, float], order: list[str]) -> list[list[str]]:
    """Subjects best first, ties (equal to 1e-9) grouped; ties keep the evidence file's order."""
    ordered = sorted(order, key=lambda s: (-round(totals[s], 9), order.index(s)))
    groups: list[list[str]] = []
    for s in ordered:
        if groups and round(totals[groups[-1][0]], 9) == round(totals[s], 9):
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def sensitivity(
    rubric: Rubric, fractions: dict[str, dict[str, float | None]], order: list[str]
) -> list[dict[str, Any]]:
    """The ranking when each non-zero weight alone is multiplied by 0.5 and by 1.5."""
    base_totals = {s: total_score(rubric, fractions[s]) for s in order}
    base = ranking(base_totals, order)
    rows: list[dict[str, Any]] = []
    targets: list[tuple[str, str, str, float]] = []
    for cat in rubric.categories:
        targets.append(("category", cat.id, cat.title, cat.weight))
        for crit in cat.criteria:
            targets.append(("criterion", crit.id, crit.title, crit.weight))
    for kind, wid, title, weight in targets:
        row: dict[str, Any] = {"kind": kind, "id": wid, "title": title, "weight": weight, "variants": []}
        for factor in SENSITIVITY_FACTORS:
            cw = {wid: weight * factor} if kind == "category" else None
            kw = {wid: weight * factor} if kind == "criterion" else None
            totals = {s: total_score(rubric, fractions[s], cw, kw) for s in order}
            rank = ranking(totals, order)
            row["variants"].append(
                {
                    "factor": factor,
                    "weight": weight * factor,
                    "totals": {s: _r(100 * t) for s, t in totals.items()},
                    "ranking": rank,
                    "changed": rank != base,
                    "max_shift": _r(100 * max(abs(totals[s] - base_totals[s]) for s in order)),
                }
            )
        rows.append(row)
    return rows


def snapshot_id(rubric: Rubric, evidence: Evidence, runs: dict[str, str], figures: dict[str, Figure]) -> str:
    """Deterministic id: sha256 of the canonical (rubric, evidence, resolved runs, measured figures)."""
    payload = {
        "format": FORMAT_VERSION,
        "rubric": rubric.model_dump(mode="json"),
        "evidence": evidence.model_dump(mode="json"),
        "runs": dict(sorted(runs.items())),
        "figures": {k: figures[k].to_json() for k in sorted(figures)},
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sc-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def diff_snapshots(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed between two ``scorecard.json`` documents: one record per changed cell field or total.

    Each record has ``subject``, ``criterion`` (None for a total), ``field``, ``old`` and ``new``.
    """
    changes: list[dict[str, Any]] = []

    def cells(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(c["subject"], c["criterion"]): c for c in doc["cells"]}

    a, b = cells(old), cells(new)
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            changes.append(
                {
                    "subject": key[0],
                    "criterion": key[1],
                    "field": "cell",
                    "old": key in a or None,
                    "new": key in b or None,
                }
            )
            continue
        for name in ("weight", "level", "points", "state", "route"):
            if a[key][name] != b[key][name]:
                changes.append(
                    {
                        "subject": key[0],
                        "criterion": key[1],
                        "field": name,
                        "old": a[key][name],
                        "new": b[key][name],
                    }
                )
        figs_a = [i["figure"]["text"] for i in a[key]["items"] if i["figure"]]
        figs_b = [i["figure"]["text"] for i in b[key]["items"] if i["figure"]]
        if figs_a != figs_b:
            changes.append(
                {"subject": key[0], "criterion": key[1], "field": "figures", "old": figs_a, "new": figs_b}
            )
        if (
            a[key]["items"] != b[key]["items"]
        ):  # any evidence change: quote, source, date, right of reply, ...
            changes.append(
                {
                    "subject": key[0],
                    "criterion": key[1],
                    "field": "evidence",
                    "old": a[key]["items"],
                    "new": b[key]["items"],
                }
            )
    totals_a = {s["id"]: s["total"] for s in old["subjects"]}
    totals_b = {s["id"]: s["total"] for s in new["subjects"]}
    for sid in sorted(set(totals_a) | set(totals_b)):
        if totals_a.get(sid) != totals_b.get(sid):
            changes.append(
                {
                    "subject": sid,
                    "criterion": None,
                    "field": "total",
                    "old": totals_a.get(sid),
                    "new": totals_b.get(sid),
                }
            )
    return changes
