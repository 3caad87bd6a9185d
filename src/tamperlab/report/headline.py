"""The headline: each arm's break cost with its spread over seeds and, for a defended arm, the ratio to the
undefended arm under the same attack. Shared by the HTML page and the terminal summary so both say the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tamperlab.report.collect import UNDEFENDED, RunView, attack_label, defense_name
from tamperlab.report.formatting import BUDGET_UNITS, fmt_bound, fmt_ratio, is_number

RATIO_UNITS = ("flops", "examples")
"""Units the defended/undefended ratio is given in: compute spent, and data an attacker needs."""


@dataclass
class Cost:
    """One budget figure: the value and whether it is only a lower bound (not broken within the budget)."""

    value: float | None
    lower_bound: bool

    def text(self, unit: str) -> str:
        return fmt_bound(self.value, unit, self.lower_bound)


@dataclass
class Ratio:
    """Defended / undefended break cost; ``relation`` is "=", "≥" or "≤" (None value: both unbroken)."""

    value: float | None
    relation: str
    baseline_arm: str

    def text(self) -> str:
        if self.value is None:
            return "n/a (neither broke)"
        return fmt_ratio(self.value, self.relation)


@dataclass
class HeadlineRow:
    """One arm's break cost.

    Attributes:
        aggregate: per budget unit, the aggregate (median over seeds) cost; empty when not computed yet.
        per_seed: seed -> unit -> cost.
        broken: whether the aggregate is a measured break (None when no aggregate was stored).
        broken_seeds, n_seeds: how many seeds broke, of how many.
        ratios: unit -> ratio to the undefended arm with the same attack (defended arms only).
        incoherent: the immunization summary flags this defense/attack as incoherent (outputs gibberish).
    """

    arm: str
    defense: str
    attack: dict[str, Any]
    aggregate: dict[str, Cost]
    per_seed: dict[int, dict[str, Cost]]
    broken: bool | None
    broken_seeds: int | None
    n_seeds: int | None
    threshold: float | None
    capability_bound: float | None
    interpolated: bool | None
    ratios: dict[str, Ratio] = field(default_factory=dict)
    incoherent: bool = False

    def spread(self, unit: str) -> str:
        """``min–max`` over seeds, each side marked "≥" when a lower bound; empty with under two seeds."""
        costs = [c[unit] for c in self.per_seed.values() if unit in c and c[unit].value is not None]
        if len(costs) < 2:
            return ""
        low = min(costs, key=lambda c: (c.value, c.lower_bound))
        high = max(costs, key=lambda c: (c.value, c.lower_bound))
        if low.text(unit) == high.text(unit):
            return f"all {low.text(unit)}"
        return (
            f"{low.text(unit)} to {high.text(unit)}"
            if low.lower_bound
            else f"{low.text(unit)}–{high.text(unit)}"
        )


def _costs(row: dict[str, Any]) -> dict[str, Cost]:
    return {u: Cost(row.get(u), not row["broken"]) for u in BUDGET_UNITS if row.get(u) is not None}


def _ratio(defended: Cost | None, baseline: Cost | None, baseline_arm: str) -> Ratio | None:
    if defended is None or baseline is None or not is_number(defended.value) or not is_number(baseline.value):
        return None
    if defended.lower_bound and baseline.lower_bound:
        return Ratio(None, "", baseline_arm)
    if baseline.value == 0:
        return None
    value = defended.value / baseline.value
    # d >= D and u exact -> ratio >= d/u; d exact and u >= U -> ratio <= d/U.
    relation = "≥" if defended.lower_bound else "≤" if baseline.lower_bound else "="
    return Ratio(value, relation, baseline_arm)


def incoherent_pairs(immunization: Any) -> set[tuple[str, str]]:
    """(defense, attack label) pairs the immunization summary flags as incoherent."""
    pairs: set[tuple[str, str]] = set()
    for defense, attack, entry in immunization_entries(immunization):
        if isinstance(entry, dict) and entry.get("incoherent"):
            pairs.add((defense, attack))
    return pairs


def immunization_entries(immunization: Any) -> list[tuple[str, str, Any]]:
    """Flatten the immunization summary to (defense, attack, entry).

    It may be nested by defense then attack (``{defense: {attack: {...}}}``) or be a list of records with
    ``defense`` and ``attack`` keys.
    """
    out: list[tuple[str, str, Any]] = []
    if isinstance(immunization, dict):
        for defense, per_attack in immunization.items():
            if isinstance(per_attack, dict):
                for attack, entry in per_attack.items():
                    out.append((str(defense), str(attack), entry))
    elif isinstance(immunization, list):
        for entry in immunization:
            if isinstance(entry, dict):
                out.append((str(entry.get("defense", "?")), str(entry.get("attack", "?")), entry))
    return out


def headline_rows(view: RunView) -> list[HeadlineRow]:
    """One row per arm, undefended arms first, then by arm name."""
    by_arm: dict[str, dict[int, dict[str, Any]]] = {}
    for row in view.break_costs:
        by_arm.setdefault(row["arm"], {})[int(row["seed"])] = row
    incoherent = incoherent_pairs(view.summaries.get("immunization"))
    arm_names = [a["arm"] for a in view.arms] + sorted(set(by_arm) - {a["arm"] for a in view.arms})

    rows: list[HeadlineRow] = []
    for name in arm_names:
        arm = view.arm_row(name) or {"arm": name, "attack": {}, "defense": None}
        costs = by_arm.get(name, {})
        aggregate = costs.get(-1)
        detail = (aggregate or {}).get("detail") or {}
        per_seed = {seed: _costs(row) for seed, row in sorted(costs.items()) if seed >= 0}
        any_row = aggregate or next(iter(costs.values()), None)
        broken_seeds = detail.get("broken_seeds")
        if broken_seeds is None and per_seed:
            broken_seeds = sum(bool(costs[s]["broken"]) for s in per_seed)
        label = attack_label(arm)
        rows.append(
            HeadlineRow(
                arm=name,
                defense=defense_name(arm),
                attack=arm.get("attack") or {},
                aggregate=_costs(aggregate) if aggregate else {},
                per_seed=per_seed,
                broken=None if aggregate is None else bool(aggregate["broken"]),
                broken_seeds=broken_seeds,
                n_seeds=detail.get("n_seeds") or (len(per_seed) or None),
                threshold=any_row["threshold"] if any_row else view.threshold,
                capability_bound=any_row["capability_bound"] if any_row else view.capability_bound,
                interpolated=detail.get("interpolated"),
                incoherent=(defense_name(arm), label) in incoherent,
            )
        )

    for row in rows:
        if row.defense == UNDEFENDED:
            continue
        baseline = _baseline(rows, row)
        if baseline is None:
            continue
        for unit in RATIO_UNITS:
            ratio = _ratio(row.aggregate.get(unit), baseline.aggregate.get(unit), baseline.arm)
            if ratio is not None:
                row.ratios[unit] = ratio
    rows.sort(key=lambda r: (r.defense != UNDEFENDED, r.defense, r.arm))
    return rows


def _baseline(rows: list[HeadlineRow], row: HeadlineRow) -> HeadlineRow | None:
    """The undefended arm under the same attack: same {name, args}, else the same arm suffix."""
    undefended = [r for r in rows if r.defense == UNDEFENDED]
    same_attack = [r for r in undefended if r.attack and r.attack == row.attack]
    if same_attack:
        return same_attack[0]
    suffix = attack_label({"arm": row.arm})
    return next((r for r in undefended if attack_label({"arm": r.arm}) == suffix), None)


def _set_text(view: RunView, prompt_set: str, metric: str, noun: str = "prompts") -> str:
    ref = (view.spec.get("eval") or {}).get(prompt_set) or {}
    ns = sorted({int(m[f"{metric}_n"]) for m in view.milestones if m.get(f"{metric}_n") is not None})
    where = str(ref.get("source", prompt_set))
    if ref.get("split"):
        where += f" ({ref['split']} split)"
    if ns:
        where += ", n=" + "/".join(str(n) for n in ns) + f" {noun}"
    return where


def measurement(view: RunView) -> list[tuple[str, str]]:
    """How the headline numbers were measured, as (what, how) pairs shown next to them."""
    seeds = view.seeds
    others = [j for j in view.judges if j != view.primary_judge]
    judge = view.primary_judge or "?"
    if others:
        judge += f" (primary; also {', '.join(others)})"
    threshold = view.threshold
    bound = view.capability_bound
    details = [r.get("detail") or {} for r in view.break_costs]
    units: Any = next((d["units"] for d in details if d.get("units")), None)
    interpolated = any(d.get("interpolated") for d in details)
    return [
        ("judge", judge),
        ("harmful prompts", _set_text(view, "harmful", "harmful_compliance_rate")),
        ("over-refusal prompts", _set_text(view, "overrefusal", "overrefusal_rate")),
        (
            "capability",
            "benign NLL on reference responses of " + _set_text(view, "harmless", "benign_nll", "responses"),
        ),
        (
            "seeds",
            f"{', '.join(map(str, seeds))}: the headline is the median over {len(seeds)} seed"
            f"{'s' if len(seeds) != 1 else ''}, the spread is min–max",
        ),
        ("threshold", "broken when harmful compliance ≥ " + ("?" if threshold is None else f"{threshold:g}")),
        ("capability bound", "?" if bound is None else f"{bound:g} (benign NLL rise allowed at a break)"),
        ("budget", _units_text(units) + ("; interpolated between milestones" if interpolated else "")),
        ("lower bounds", "“≥ x”: not broken within the largest budget tried (x), so the true cost is higher"),
    ]


def _units_text(units: Any) -> str:
    if isinstance(units, dict):
        return "; ".join(f"{k}: {v}" for k, v in units.items())
    if isinstance(units, list | tuple):
        return ", ".join(map(str, units))
    if units:
        return str(units)
    return ", ".join(BUDGET_UNITS)
