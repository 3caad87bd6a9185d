"""The headline: each arm's break cost with its spread over seeds and, for a defended arm, the ratio to the
undefended arm under the same attack. Shared by the HTML page and the terminal summary so both say the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tamperlab.report.collect import UNDEFENDED, RunView, attack_label, defense_name, threshold_text
from tamperlab.report.formatting import BUDGET_UNITS, fmt_bound, fmt_lr, fmt_ratio, is_number
from tamperlab.store.store import divergences_of

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
        incoherent: the immunization summary flags this arm's defense as incoherent before any attack (its
            outputs are gibberish), so its resistance is not counted.
        diverged: the arm's diverged trajectories (``{"seed", "step", "error"}``), left out of its break
            cost: neither broken nor a lower bound.
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
    diverged: list[dict[str, Any]] = field(default_factory=list)
    threshold_rule: dict[str, Any] | None = None

    @property
    def threshold_text(self) -> str:
        """The row's threshold as figures print it: ``0.5``, or ``80% (released 55% + 25 pts)``."""
        return threshold_text(self.threshold, self.threshold_rule)

    def diverged_text(self) -> str:
        """``seed 0 diverged at step 3`` per diverged trajectory, joined; empty when none diverged."""
        return "; ".join(f"seed {d.get('seed')} diverged at step {d.get('step')}" for d in self.diverged)

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


# -- immunization (the summary of tamperlab.evals.immunization) ----------------------------------------------

IMMUNIZATION_VERSION = 1
"""The version of the stored "immunization" summary this report reads."""

RESISTANCE_STATUS = {
    "measured": "both broke: measured",
    "lower_bound": "defended arm never broke within the budget: lower bound",
    "upper_bound": "undefended arm never broke within the budget: upper bound",
    "neither_broken": "neither arm broke within the budget: no ratio",
    "missing": "no break cost stored",
    "incoherent": "defense incoherent before any attack: not counted",
}
"""What each resistance status means, as the page and the terminal say it."""


@dataclass
class WorstCase:
    """One attack family's worst case over the attacker's learning rates, for one defense.

    Attributes:
        family: the summary's family key (attack, mode, data, prompts).
        label: the family as a reader sees it.
        arms: the family's arms under this defense.
        learning_rates: the attacker learning rates tried (None = the attack's default).
        flops, examples: the smallest counted ratio in that unit (``{ratio, bound, arm, text}``), or None when
            no arm of the family counts (incoherent, neither broken, missing).
        text: the summary's text for the family (the FLOPs ratio, or why there is none).
        relation: "in-distribution" or "held-out" (the attack's data vs the defense's), None when unknown.
    """

    family: str
    label: str
    arms: list[str]
    learning_rates: list[Any]
    flops: dict[str, Any] | None
    examples: dict[str, Any] | None
    text: str
    relation: str | None

    @property
    def arm(self) -> str | None:
        """The arm that gave the worst case (in FLOPs, else examples)."""
        return (self.flops or self.examples or {}).get("arm")

    @property
    def at_most_arm(self) -> str | None:
        """When the worst case is a lower bound: the arm of the smallest measured ratio above it, which
        bounds the worst case from above (the true worst may be at either arm)."""
        return (self.flops or self.examples or {}).get("at_most_arm")

    def where(self, rows: list[dict[str, Any]]) -> str | None:
        """The attacker learning rate of the worst case ("lr 3e-4"), and of the measured setting that caps it
        when the worst case is a lower bound ("lr 3e-4 or lr 1e-3"); None when its arm has no row."""
        by_arm = {r.get("arm"): r for r in rows}
        if self.arm not in by_arm:
            return None
        text = f"lr {fmt_lr(by_arm[self.arm].get('learning_rate'))}"
        if self.at_most_arm:
            text += f" or lr {fmt_lr((by_arm.get(self.at_most_arm) or {}).get('learning_rate'))}"
        return text

    def ratio(self, unit: str) -> str:
        """The worst case in ``unit`` ("≥ 3.5×"), else why there is none ("incoherent", "neither broken")."""
        worst = getattr(self, unit)
        return ratio_text(worst) if worst else self.text


@dataclass
class DefenseSummary:
    """One defense's record in the immunization summary, with what both renderings need from it."""

    label: str
    entry: dict[str, Any]
    rows: list[dict[str, Any]]
    worst: list[WorstCase]

    @property
    def incoherent(self) -> bool:
        return bool(self.entry.get("incoherent"))

    @property
    def reasons(self) -> list[str]:
        return [str(r) for r in self.entry.get("incoherent_reasons") or []]

    @property
    def over_refusing(self) -> bool:
        """Refuses far more safe or harmless prompts than the undefended model before any attack (summaries
        written before this flag existed have no such field: not flagged)."""
        return bool(self.entry.get("over_refusing"))

    @property
    def over_refusing_reasons(self) -> list[str]:
        return [str(r) for r in self.entry.get("over_refusing_reasons") or []]

    def row(self, attack: str) -> dict[str, Any] | None:
        """This defense's row for an attack label (the arm name without the defense part)."""
        return next((r for r in self.rows if r.get("attack") == attack), None)


def ratio_text(unit: dict[str, Any] | None) -> str:
    """A summary ratio record (``{ratio, bound, ...}``) as "≥ 10.2×", "1.5×", "≥ 1.3×, ≤ 2.6×" or "—"."""
    if not isinstance(unit, dict) or not is_number(unit.get("ratio")):
        return "—"
    text = fmt_ratio(unit["ratio"], unit.get("bound") or "=")
    if is_number(unit.get("at_most")):  # a worst case between a lower bound and a measured ratio
        text += ", " + fmt_ratio(unit["at_most"], "≤")
    return text


def family_label(row: dict[str, Any]) -> str:
    """An attack family as a reader sees it: ``harmful-sft · full · data self-completions · prompts
    builtin:harmful``."""
    data = row.get("attack_data") or {}
    parts = [str(row.get("attack_name") or row.get("attack") or "?")]
    if row.get("mode"):
        parts.append(str(row["mode"]))
    if data.get("data"):
        parts.append(f"data {data['data']}")
    if data.get("prompts"):
        parts.append(f"prompts {data['prompts']}")
    return " · ".join(parts)


def immunization_recognised(summary: Any) -> bool:
    """Whether ``summary`` has the shape :func:`tamperlab.evals.immunization.immunization_summary` stores."""
    return isinstance(summary, dict) and isinstance(summary.get("defenses"), list)


def immunization_defenses(summary: Any) -> list[DefenseSummary]:
    """The defenses of a stored immunization summary (empty when there is none or its shape is unknown)."""
    if not immunization_recognised(summary):
        return []
    out: list[DefenseSummary] = []
    for entry in summary["defenses"]:
        if not isinstance(entry, dict):
            continue
        rows = [r for r in entry.get("attacks") or [] if isinstance(r, dict)]
        by_arm = {r.get("arm"): r for r in rows}
        worst = []
        for case in entry.get("worst_case") or []:
            if not isinstance(case, dict):
                continue
            members = [by_arm[a] for a in case.get("arms") or [] if a in by_arm]
            relations = {m.get("data_relation") for m in members} - {None}
            worst.append(
                WorstCase(
                    family=str(case.get("family", "?")),
                    label=family_label(members[0]) if members else str(case.get("family", "?")),
                    arms=[str(a) for a in case.get("arms") or []],
                    learning_rates=[m.get("learning_rate") for m in members],
                    flops=case.get("flops") if isinstance(case.get("flops"), dict) else None,
                    examples=case.get("examples") if isinstance(case.get("examples"), dict) else None,
                    text=str(case.get("text") or "—"),
                    relation=relations.pop() if len(relations) == 1 else None,
                )
            )
        label = next((str(r["arm"]).split("/", 1)[0] for r in rows if "/" in str(r.get("arm", ""))), None)
        out.append(DefenseSummary(label or str(entry.get("defense") or "?"), entry, rows, worst))
    # Two variants of one defense (different args) share a name: tell them apart by their model.
    labels = [d.label for d in out]
    for d in out:
        if labels.count(d.label) > 1:
            d.label = f"{d.label} ({d.entry.get('model_id')})"
    return out


def incoherent_arms(summary: Any) -> set[str]:
    """Arms whose resistance the immunization summary does not count because the defense is incoherent."""
    arms: set[str] = set()
    for defense in immunization_defenses(summary):
        for row in defense.rows:
            if defense.incoherent or (row.get("resistance") or {}).get("status") == "incoherent":
                arms.add(str(row.get("arm")))
    return arms


def headline_rows(view: RunView) -> list[HeadlineRow]:
    """One row per arm, undefended arms first, then by arm name."""
    by_arm: dict[str, dict[int, dict[str, Any]]] = {}
    for row in view.break_costs:
        by_arm.setdefault(row["arm"], {})[int(row["seed"])] = row
    incoherent = incoherent_arms(view.summaries.get("immunization"))
    diverged: dict[str, list[dict[str, Any]]] = {}
    for d in divergences_of(view.summaries):
        diverged.setdefault(str(d.get("arm")), []).append(d)
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
                incoherent=name in incoherent,
                diverged=diverged.get(name, []),
                threshold_rule=(any_row.get("threshold_rule") if any_row else None) or view.threshold_rule,
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
    rows = [view.evaluation_row()] if view.is_evaluation else view.milestones
    ns = sorted({int(m[f"{metric}_n"]) for m in rows if m.get(f"{metric}_n") is not None})
    where = str(ref.get("source", prompt_set))
    if ref.get("split"):
        where += f" ({ref['split']} split)"
    if ns:
        where += ", n=" + "/".join(str(n) for n in ns) + f" {noun}"
    return where


def measurement(view: RunView) -> list[tuple[str, str]]:
    """How the headline numbers were measured, as (what, how) pairs shown next to them (for an
    evaluation-only run, only its judges and prompt sets: it has no seeds, threshold or budget)."""
    seeds = view.seeds
    others = [j for j in view.judges if j != view.primary_judge]
    judge = view.primary_judge or "?"
    if others:
        judge += f" (primary; also {', '.join(others)})"
    bound = view.capability_bound
    details = [r.get("detail") or {} for r in view.break_costs]
    units: Any = next((d["units"] for d in details if d.get("units")), None)
    interpolated = any(d.get("interpolated") for d in details)
    measured = [
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
        ("threshold", "broken when harmful compliance ≥ " + view.threshold_text),
        ("capability bound", "?" if bound is None else f"{bound:g} (benign NLL rise allowed at a break)"),
        ("budget", _units_text(units) + ("; interpolated between milestones" if interpolated else "")),
        ("milestones", _milestones_text(view.spec)),
        ("lower bounds", "“≥ x”: not broken within the largest budget tried (x), so the true cost is higher"),
    ]
    return measured[:4] if view.is_evaluation else measured


def _milestones_text(spec: dict[str, Any]) -> str:
    steps = spec.get("milestones")
    text = "steps " + ", ".join(map(str, steps)) if steps else "?"
    if (spec.get("break_cost") or {}).get("stop_when_broken"):
        return text + (
            "; a trajectory ends at the milestone that breaks it (later ones cannot lower its break cost), "
            "except benign fine-tuning's, which measures trainability"
        )
    return text + "; trajectories are not ended at their break"


def _units_text(units: Any) -> str:
    if isinstance(units, dict):
        return "; ".join(f"{k}: {v}" for k, v in units.items())
    if isinstance(units, list | tuple):
        return ", ".join(map(str, units))
    if units:
        return str(units)
    return ", ".join(BUDGET_UNITS)
