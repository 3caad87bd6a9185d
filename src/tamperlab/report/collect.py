"""Everything the report shows, read from the store in one place (and nothing but the store).

:func:`load_run_view` turns a run's rows into a :class:`RunView` of plain records; the HTML page, the terminal
summary and the export render that view and never query the store themselves.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tamperlab.errors import StoreError
from tamperlab.store import Store

PROMPT_SETS = ("harmful", "harmless", "overrefusal")
HEADLINE_METRIC = "harmful_compliance_rate"
UNDEFENDED = "undefended"
EVALUATION_ARM = "evaluation"
"""The arm name an evaluation-only run's generations are shown under (it has no attack arm)."""


@dataclass
class RunView:
    """One run as the report sees it.

    Attributes:
        run: the run row (run_id, kind, status, error, created_at, finished_at, wall_seconds, spec,
            provenance).
        arms: arm rows (arm, defense, attack, parent_model_id, data), by arm name order.
        milestones: milestone rows with metrics flattened in (``Store.milestones``), plus ``steps``
            (= ``step``) so every budget unit is a key.
        break_costs: break cost rows; seed -1 is the aggregate over seeds.
        summaries: the run's summary records by key ("headline", "immunization", ...).
        lineage: models the run produced plus their ancestors, parents first.
        model_metrics: per model id, its evaluations' metrics ({name: {value, ci_low, ci_high, n}}), the
            median over evaluations when a model was evaluated more than once (e.g. the start model at step 0
            of each seed).
        samples: sampled generations of the milestone evaluations, each with arm, seed, step and verdicts.
        sample_counts: per eval id, how many generations it stored in total (samples show a subset).
        judge_confusion: per arm and judge pair (primary, other), counts of (primary refused, other
            refused) on the harmful prompt set over all milestones and seeds.
        primary_judge: the judge that drives the headline rates.
        judges: every judge that gave a verdict, primary first.
        evaluation: an evaluation-only run's (``tamperlab eval``) metrics, {name: {value, ci_low, ci_high,
            n}}; empty for a study (its evaluations are its milestones').
    """

    run: dict[str, Any]
    arms: list[dict[str, Any]]
    milestones: list[dict[str, Any]]
    break_costs: list[dict[str, Any]]
    summaries: dict[str, Any]
    lineage: list[dict[str, Any]]
    model_metrics: dict[str, dict[str, dict[str, Any]]]
    samples: list[dict[str, Any]]
    sample_counts: dict[str, int]
    judge_confusion: dict[str, dict[tuple[str, str], dict[tuple[bool, bool], int]]]
    primary_judge: str | None
    judges: list[str] = field(default_factory=list)
    evaluation: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    @property
    def is_evaluation(self) -> bool:
        """An evaluation-only run: one model measured as it is, no attack and so no break cost."""
        return self.run.get("kind") == "eval"

    def evaluation_row(self) -> dict[str, Any]:
        """The evaluation's metrics flattened as a milestone row is (``NAME``, ``NAME_ci_low``, ...)."""
        row: dict[str, Any] = {"eval_id": self.run_id, "arm": EVALUATION_ARM, "seed": 0, "step": 0}
        for name, m in self.evaluation.items():
            row[name] = m.get("value")
            for key in ("ci_low", "ci_high", "n"):
                row[f"{name}_{key}"] = m.get(key)
        return row

    @property
    def spec(self) -> dict[str, Any]:
        return self.run.get("spec") or {}

    @property
    def provenance(self) -> dict[str, Any]:
        return self.run.get("provenance") or {}

    @property
    def seeds(self) -> list[int]:
        """Seeds of the run: from the spec, else those that have milestones."""
        seeds = self.spec.get("seeds")
        if isinstance(seeds, list) and seeds:
            return [int(s) for s in seeds]
        return sorted({int(m["seed"]) for m in self.milestones})

    @property
    def threshold(self) -> float | None:
        """Harmful-compliance threshold of the break cost (summary, else spec, else the stored rows)."""
        spec = self.spec.get("break_cost") or {}
        # A relative threshold (threshold_rise) is known only once measured: the spec's is not the one used.
        sources = [self.summaries.get("headline") or {}] + ([] if spec.get("threshold_rise") else [spec])
        for source in sources:
            if source.get("threshold") is not None:
                return float(source["threshold"])
        return self.break_costs[0]["threshold"] if self.break_costs else None

    @property
    def threshold_rule(self) -> dict[str, Any] | None:
        """How a relative threshold was set (``rise``, ``base``, ``base_of``, ``capped``; see
        :func:`tamperlab.evals.break_cost.relative_threshold`), or None for an absolute one."""
        rule = (self.summaries.get("headline") or {}).get("threshold_rule")
        if rule is None:
            rule = next((c["threshold_rule"] for c in self.break_costs if c.get("threshold_rule")), None)
        return rule

    @property
    def threshold_text(self) -> str:
        """The threshold as figures print it: ``0.5``, or ``80% (released 55% + 25 pts)``."""
        return threshold_text(self.threshold, self.threshold_rule)

    @property
    def capability_bound(self) -> float | None:
        """The break cost's capability tolerance (summary, else spec, else the stored rows)."""
        for source in (self.summaries.get("headline") or {}, self.spec.get("break_cost") or {}):
            if source.get("capability_tolerance") is not None:
                return float(source["capability_tolerance"])
        return self.break_costs[0]["capability_bound"] if self.break_costs else None

    def arm_row(self, arm: str) -> dict[str, Any] | None:
        return next((a for a in self.arms if a["arm"] == arm), None)

    def metric_names(self) -> set[str]:
        """Names of every metric present in at least one milestone."""
        names: set[str] = set()
        for row in self.milestones:
            names.update(k[: -len("_n")] for k in row if k.endswith("_n") and k[: -len("_n")] in row)
        return names


def resolve_run_id(store: Store, run_id: str | None = None, *, kind: str | None = "run") -> str:
    """The full id of the run to report: ``run_id`` (a prefix is enough), or the latest run when None.

    The latest run prefers a complete one (a report on a run that is still going is partial) and falls back to
    the latest of any status. This is what ``tamperlab report [RUN_ID|--latest]`` needs.

    Raises:
        StoreError: no run matches, the prefix is ambiguous, or the store holds no run of ``kind``.
    """
    if run_id:
        row = store.get_run(run_id)
        return row["run_id"] if row else store.find_run(run_id)["run_id"]
    latest = store.latest_run(kind, complete_only=True) or store.latest_run(kind)
    if latest is None:
        what = f"{kind!r} run" if kind else "run"
        raise StoreError(f"no {what} in {store.path}")
    return latest["run_id"]


def _median_metrics(metric_sets: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    if len(metric_sets) == 1:
        return metric_sets[0]
    merged: dict[str, dict[str, Any]] = {}
    for name in {n for ms in metric_sets for n in ms}:
        entries = [ms[name] for ms in metric_sets if name in ms and ms[name]["value"] is not None]
        if not entries:
            continue
        merged[name] = {
            key: statistics.median(e[key] for e in entries)
            if all(e[key] is not None for e in entries)
            else None
            for key in ("value", "ci_low", "ci_high", "n")
        }
    return merged


def _model_metrics(store: Store, model_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Metrics of every complete evaluation of the given models (the store has no by-model query)."""
    if not model_ids:
        return {}
    by_model: dict[str, list[dict[str, dict[str, Any]]]] = defaultdict(list)
    for start in range(0, len(model_ids), 500):  # SQLite's bound-parameter limit
        chunk = model_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.conn.execute(
            f"SELECT eval_id, model_id FROM evaluations WHERE status = 'complete' AND model_id IN ({marks})"
            " ORDER BY eval_id",
            chunk,
        ).fetchall()
        for row in rows:
            by_model[row["model_id"]].append(store.metrics(row["eval_id"]))
    return {mid: _median_metrics(sets) for mid, sets in by_model.items() if sets}


def _primary_judge(
    store: Store, run: dict[str, Any], summaries: dict[str, Any]
) -> tuple[str | None, list[str]]:
    """The primary judge (headline summary, else first in the eval spec) and every judge seen."""
    judges: list[str] = []
    spec_judges = ((run.get("spec") or {}).get("eval") or {}).get("judges") or []
    for ref in spec_judges:
        name = ref.get("name") if isinstance(ref, dict) else str(ref)
        if name and name not in judges:
            judges.append(name)
    rows = store.conn.execute(
        "SELECT DISTINCT v.judge FROM verdicts v JOIN milestones m ON m.eval_id = v.eval_id WHERE "
        "m.run_id = ?"
        " ORDER BY v.judge",
        (run["run_id"],),
    ).fetchall()
    for row in rows:
        if row["judge"] not in judges:
            judges.append(row["judge"])
    primary = (summaries.get("headline") or {}).get("judge") or (judges[0] if judges else None)
    if primary in judges:
        judges.remove(primary)
    return primary, ([primary] if primary else []) + judges


def _judge_confusion(
    store: Store, run_id: str, primary: str | None, judges: list[str]
) -> dict[str, dict[tuple[str, str], dict[tuple[bool, bool], int]]]:
    out: dict[str, dict[tuple[str, str], dict[tuple[bool, bool], int]]] = defaultdict(dict)
    if primary is None:
        return out
    for other in judges:
        if other == primary:
            continue
        rows = store.conn.execute(
            "SELECT m.arm AS arm, a.refused AS a, b.refused AS b, COUNT(*) AS n FROM milestones m"
            " JOIN verdicts a ON a.eval_id = m.eval_id AND a.judge = ? AND a.prompt_set = 'harmful'"
            " JOIN verdicts b ON b.eval_id = a.eval_id AND b.prompt_set = a.prompt_set"
            " AND b.prompt_id = a.prompt_id AND b.judge = ?"
            " WHERE m.run_id = ? GROUP BY m.arm, a.refused, b.refused",
            (primary, other, run_id),
        ).fetchall()
        for row in rows:
            cell = out[row["arm"]].setdefault((primary, other), {})
            cell[(bool(row["a"]), bool(row["b"]))] = row["n"]
    return dict(out)


def _sample_generations(
    generations: list[dict[str, Any]], primary: str | None, per_verdict: int
) -> list[dict[str, Any]]:
    """Up to ``per_verdict`` complied, refused and judge-split generations per prompt set, in id order."""
    chosen: list[dict[str, Any]] = []
    for prompt_set in sorted({g["prompt_set"] for g in generations}):
        taken: dict[str, int] = defaultdict(int)
        for gen in (g for g in generations if g["prompt_set"] == prompt_set):
            verdicts = gen["verdicts"]
            refused = verdicts.get(primary, {}).get("refused") if primary else None
            disagree = len({v["refused"] for v in verdicts.values()}) > 1
            bucket = "disagree" if disagree else "refused" if refused else "complied"
            if taken[bucket] < per_verdict:
                taken[bucket] += 1
                chosen.append(gen)
    return chosen


def load_run_view(store: Store, run_id: str, *, samples_per_verdict: int = 3) -> RunView:
    """Read everything the report shows about ``run_id`` (a prefix is enough).

    Args:
        store: an open store (read-only is enough).
        run_id: the run's id or a unique prefix of it.
        samples_per_verdict: sample generations kept per evaluation, prompt set and verdict (complied,
            refused, judges disagree); the store keeps them all.

    Raises:
        StoreError: the run is not in the store.
    """
    run = store.get_run(run_id) or store.find_run(run_id)
    run_id = run["run_id"]
    summaries = store.summaries(run_id)
    milestones = store.milestones(run_id)
    for row in milestones:  # budgets are keyed by unit everywhere else (the milestones table says "step")
        row["steps"] = row["step"]
    primary, judges = _primary_judge(store, run, summaries)
    lineage = store.lineage(run_id)
    model_metrics = _model_metrics(store, [m["model_id"] for m in lineage])

    samples: list[dict[str, Any]] = []
    sample_counts: dict[str, int] = {}
    sources = [
        (row["eval_id"], row["arm"], row["seed"], row["step"]) for row in milestones if row.get("eval_id")
    ]
    evaluation: dict[str, dict[str, Any]] = {}
    if run.get("kind") == "eval":  # the run is its one evaluation
        evaluation = store.metrics(run_id)
        sources.append((run_id, EVALUATION_ARM, 0, 0))
        if primary is None or len(judges) < 2:
            primary, judges = _evaluation_judges(store, run_id, primary, judges)
    for eval_id, arm, seed, step in sources:
        if samples_per_verdict <= 0:
            break
        generations = store.generations(eval_id)
        sample_counts[eval_id] = len(generations)
        for gen in _sample_generations(generations, primary, samples_per_verdict):
            samples.append({**gen, "arm": arm, "seed": seed, "step": step})

    return RunView(
        run=run,
        arms=store.arms(run_id),
        milestones=milestones,
        break_costs=store.break_costs(run_id),
        summaries=summaries,
        lineage=lineage,
        model_metrics=model_metrics,
        samples=samples,
        sample_counts=sample_counts,
        judge_confusion=_judge_confusion(store, run_id, primary, judges),
        primary_judge=primary,
        judges=judges,
        evaluation=evaluation,
    )


def _evaluation_judges(
    store: Store, eval_id: str, primary: str | None, judges: list[str]
) -> tuple[str | None, list[str]]:
    """An evaluation-only run's judges: the spec's, then any other that gave a verdict on it."""
    seen = [
        r["judge"]
        for r in store.conn.execute(
            "SELECT DISTINCT judge FROM verdicts WHERE eval_id = ? ORDER BY judge", (eval_id,)
        ).fetchall()
    ]
    judges = judges + [j for j in seen if j not in judges]
    primary = primary or (judges[0] if judges else None)
    return primary, judges


def defense_name(arm: dict[str, Any]) -> str:
    """The arm's defense name, ``undefended`` when it has none."""
    defense = arm.get("defense")
    return defense.get("name", UNDEFENDED) if isinstance(defense, dict) else UNDEFENDED


def attack_label(arm: dict[str, Any]) -> str:
    """The arm's name without its defense part (``harmful-sft-full``): pairs defended and undefended arms."""
    name = arm["arm"]
    return name.split("/", 1)[1] if "/" in name else name


def threshold_text(threshold: float | None, rule: dict[str, Any] | None = None) -> str:
    """The threshold as figures print it: ``0.5``, or a relative one with its rule,
    ``80% (released 55% + 25 pts)`` (``, capped at 100%`` when the rise would pass 1.0)."""
    if threshold is None:
        return "?"
    if not rule:
        return f"{threshold:g}"

    def pct(value: float) -> str:  # 82.5% stays 82.5%, 80.0% prints 80%
        return f"{round(value * 100, 1):g}%"

    capped = ", capped at 100%" if rule.get("capped") else ""
    return (
        f"{pct(threshold)} ({rule.get('base_of', 'start')} {pct(rule['base'])} +"
        f" {round(rule['rise'] * 100, 1):g} pts{capped})"
    )
