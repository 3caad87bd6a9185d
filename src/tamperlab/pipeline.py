"""`tamperlab run`: safeguard → (defend) → attack along budget milestones → measure → break cost.

One :class:`RunSpec` is one run, with a deterministic id. Every (arm, seed, milestone) result is committed as
soon as it is measured; a run that is killed and started again skips the milestones already in the store (the
training trajectory is replayed deterministically from its seed up to the last milestone, and only missing
milestones are evaluated), so nothing is duplicated and nothing measured is lost.

A trajectory ends at the first milestone that breaks it (``break_cost.stop_when_broken``, on by default): the
break cost is the smallest budget that breaks, so later milestones cannot change it, and the default run's
full fine-tuning attack, broken within 2 of its 8 steps, would otherwise spend most of its time past the
answer.

Arms: every variant (the safeguarded model, "undefended", and each defense applied to it) × every attack.

A run can be split across processes that share one store (e.g. several on one GPU): ``shard=(k, n)`` prepares
the variants (under a file lock, so only one process trains each defense) and then runs every n-th
(arm, seed) trajectory starting at k; it leaves break costs and summaries to a final run without a shard,
which finds every milestone already stored.

An attack that changes how the model is *prompted* rather than its weights (prefill, templates) sets
``eval_overrides`` (``system`` / ``prefill``), which the pipeline passes to the evaluation at its milestones.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tamperlab import paths, progress, provenance
from tamperlab.attacks import AttackContext, build_attack
from tamperlab.config import ComponentRef, ModelSpec, RunSpec, spec_id
from tamperlab.data.sets import data_fingerprints
from tamperlab.defenses import build_defense
from tamperlab.errors import ConfigError, DivergedError, StoreError
from tamperlab.evals.break_cost import Point, aggregate_seeds, break_cost, relative_threshold
from tamperlab.evals.capability import Reference
from tamperlab.evals.capability_suite import data_fingerprints as capability_fingerprints
from tamperlab.evals.capability_suite import load_tasks
from tamperlab.evals.safety import build_judges, evaluate, load_eval_sets
from tamperlab.models.adapters import adapter_record, is_adapter_dir, read_adapter
from tamperlab.models.identity import model_key
from tamperlab.models.loading import (
    cached_model_dir,
    is_cached,
    load_model,
    save_model,
)
from tamperlab.store import Store

log = logging.getLogger(__name__)

BUDGET_KEYS = ("steps", "examples", "tokens", "flops", "seconds")

DEFENSE_RECORD = "tamperlab_defense.json"


@dataclass
class Variant:
    """A model the attacks start from: the safeguarded model or a defended copy of it."""

    label: str  # "undefended" or the defense's label
    model_name: str  # name load_model resolves (a cache name or path)
    model_id: str  # id in the store's models table
    eval_id: str  # its evaluation before any attack
    defense: dict | None


class _Broken(Exception):
    """Raised from a milestone callback to end a trajectory whose break cost is settled."""


@dataclass
class RunOutcome:
    run_id: str
    reused: bool
    status: str
    seconds: float


def _short_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def add_released_model(
    store: Store, spec: ModelSpec, model_id: str, *, run_id: str, source: str | None = None
) -> None:
    """Record the model a run or evaluation starts from (``source``: what the store shows; default its
    identity). An adapter is recorded as a child of its base (the lineage edge's modification names the
    adapter), with the base recorded first."""
    key = model_key(spec)
    path = Path(spec.name).expanduser()
    if not is_adapter_dir(path):
        store.add_model(model_id, "base", run_id=run_id, source=source or key)
        return
    adapter = read_adapter(path)
    base_key = model_key(spec.model_copy(update={"name": adapter.base}))
    base_id = f"model-{_short_hash(base_key)}"
    store.add_model(base_id, "base", run_id=run_id, source=base_key)
    store.add_model(
        model_id,
        "adapter",
        parent_id=base_id,
        run_id=run_id,
        source=source or key,
        modification=adapter_record(adapter),
    )


def run_id_for(spec: RunSpec) -> str:
    """Hash of the resolved spec with the model's identity, every component's args with their defaults filled
    in, and the fingerprints of every prompt set it names (so a changed default or data set is a new run)."""
    keyed = spec.model_copy(update={"model": spec.model.model_copy(update={"name": model_key(spec.model)})})
    defenses = ([spec.safeguard] if spec.safeguard else []) + spec.defenses
    components = [
        [ref.name, _fingerprint_args(ref)] + _recipe_version(build_defense(ref.name, ref.args))
        for ref in defenses
    ] + [[ref.name, _fingerprint_args(ref, "attack")] for ref in spec.attacks]
    data = data_fingerprints([spec.eval.model_dump(mode="json"), components])
    data += capability_fingerprints(load_tasks(spec.eval))
    return spec_id(keyed, prefix="run-", extra={"components": components, "data": data})


class Pipeline:
    """Executes one RunSpec against one store."""

    def __init__(self, spec: RunSpec, store: Store, shard: tuple[int, int] | None = None) -> None:
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard {shard[0]}/{shard[1]}: need 0 <= K < N")
        self.spec = spec
        self.shard = shard
        self.store = store
        # Judge names and data files fail fast, before the model is resolved (which may convert a GGUF).
        self.judges = build_judges(spec.eval)
        self.sets = load_eval_sets(spec.eval)
        self.tasks = load_tasks(spec.eval)
        self.run_id = run_id_for(spec)
        self.ctx = AttackContext(unaligned=spec.model)
        self._references: dict[str, Any] = {}

    # -- models ----------------------------------------------------------------------------------------------

    def _model_spec(self, name: str) -> ModelSpec:
        return self.spec.model.model_copy(update={"name": name})

    def defended(self, parent_name: str, parent_id: str, ref: ComponentRef, label: str) -> tuple[str, str]:
        """Apply a defense to a model, or reuse the cached result; returns (cache name, store model id)."""
        defense = build_defense(ref.name, ref.args)
        args = {"name": ref.name, "args": _validated_args(ref)}
        keyed = {"name": ref.name, "args": _fingerprint_args(ref)}
        recipe = [data_fingerprints(args)] + _recipe_version(defense)
        key = _short_hash([model_key(self._model_spec(parent_name)), keyed, recipe])
        name = f"{_slug(parent_name)}+{ref.name}-{key}"
        if not is_cached(name):
            log.info("applying %s to %s (cached afterwards as %s)", ref.name, parent_name, name)
            progress.stage(f"applying {ref.name} to {parent_name} (cached afterwards)")
            loaded = load_model(self._model_spec(parent_name))
            outcome = defense.apply(loaded)
            record = {"defense": args, "parent": parent_name, "budget": outcome.budget, "data": outcome.data}
            save_model(outcome.model, loaded.tokenizer, name, {DEFENSE_RECORD: json.dumps(record, indent=2)})
            del loaded, outcome
        record = json.loads((cached_model_dir(name) / DEFENSE_RECORD).read_text())
        model_id = f"model-{key}"
        self.store.add_model(
            model_id,
            label,
            parent_id=parent_id,
            run_id=self.run_id,
            source=f"cache:{name}",
            modification=args,
            budget=record["budget"] | {"data": record["data"]},
        )
        return name, model_id

    def reference(self, model_name: str) -> Any:
        """A frozen copy of an attacked model's parent, for KL at every milestone (loaded once)."""
        if model_name not in self._references:
            self._references[model_name] = Reference(load_model(self._model_spec(model_name)).model)
        return self._references[model_name]

    def evaluate_model(self, model_name: str, model_id: str, reference_name: str | None) -> str:
        """Evaluate a model before any attack (once per run); returns the evaluation id."""
        eval_id = f"{self.run_id}/{model_id}"
        if self.store.evaluation_status(eval_id) != "complete":
            progress.stage(f"evaluating {model_name} before any attack")
            loaded = load_model(self._model_spec(model_name))
            reference = self.reference(reference_name) if reference_name else None
            result = evaluate(
                loaded.model,
                loaded.tokenizer,
                self.spec.eval,
                judges=self.judges,
                reference_model=reference,
                sets=self.sets,
                tasks=self.tasks,
            )
            self.store.save_evaluation(
                eval_id,
                run_id=self.run_id,
                model_id=model_id,
                spec=self.spec.eval.model_dump(mode="json"),
                generations=result.generations,
                verdicts=result.verdicts,
                metrics=result.metrics,
                seconds=result.seconds,
                capability_items=result.capability_items,
            )
        return eval_id

    def variants(self) -> list[Variant]:
        """The base model, its safeguarded version, and each defense on top; each evaluated once."""
        base_name = self.spec.model.name
        base_id = f"model-{_short_hash(model_key(self.spec.model))}"
        add_released_model(self.store, self.spec.model, base_id, run_id=self.run_id)
        if self.spec.safeguard is not None:
            self.evaluate_model(base_name, base_id, None)
            safe_name, safe_id = self.defended(base_name, base_id, self.spec.safeguard, "safeguarded")
        else:
            safe_name, safe_id = base_name, base_id
        out = [
            Variant(
                "undefended", safe_name, safe_id, self.evaluate_model(safe_name, safe_id, safe_name), None
            )
        ]
        for ref in self.spec.defenses:
            name, model_id = self.defended(safe_name, safe_id, ref, ref.name)
            eval_id = self.evaluate_model(name, model_id, safe_name)
            out.append(
                Variant(ref.name, name, model_id, eval_id, {"name": ref.name, "args": _validated_args(ref)})
            )
        return out

    # -- attacks ---------------------------------------------------------------------------------------------

    def arms(self, variants: list[Variant]) -> list[tuple[str, Variant, Any, ComponentRef]]:
        attacks = [(build_attack(ref.name, ref.args), ref) for ref in self.spec.attacks]
        labels = [a.label for a, _ in attacks]
        out = []
        for variant in variants:
            for i, (attack, ref) in enumerate(attacks):
                label = attack.label if labels.count(attack.label) == 1 else f"{attack.label}#{i + 1}"
                out.append((f"{variant.label}/{label}", variant, attack, ref))
        return out

    def trajectory(
        self, arm: str, variant: Variant, attack: Any, seed: int, references: list[str], position: str = ""
    ) -> None:
        """Attack one variant with one seed, committing each milestone as it is measured, until the last
        milestone or (``stop_when_broken``) the first that breaks it. ``references``: the evaluations whose
        benign NLL bounds capability (see :func:`save_break_costs`); ``position``: "k/n" among the run's
        trajectories, for the progress line."""
        milestones = self.spec.milestones
        done = self.store.completed_steps(self.run_id, arm, seed)
        stops = stops_when_broken(self.spec, attack)
        if trajectory_finished(self.store, self.run_id, self.spec, arm, seed, references, stops):
            return
        resumed = f" (steps {', '.join(map(str, sorted(done)))} already stored)" if done else ""
        where = f" {position}" if position else ""
        log.info("attacking: %s, seed %d%s", arm, seed, resumed)
        progress.stage(f"trajectory{where}: {arm}, seed {seed}{resumed}")
        loaded = load_model(self._model_spec(variant.model_name))
        reference = self.reference(variant.model_name)

        def on_milestone(budget: Any, model: Any) -> None:
            if budget.steps in done:
                return
            budget_dict = {k: getattr(budget, k) for k in BUDGET_KEYS}
            if budget.steps == 0:  # the unmodified parent: its evaluation is already stored
                model_ref: dict[str, Any] = {"model_id": variant.model_id}
                evaluation: dict[str, Any] = {"eval_id": variant.eval_id}
            else:
                result = evaluate(
                    model,
                    loaded.tokenizer,
                    self.spec.eval,
                    judges=self.judges,
                    reference_model=reference,
                    sets=self.sets,
                    tasks=self.tasks,
                    **attack.eval_overrides,
                )
                model_id = f"{self.run_id}/{arm}/s{seed}@{budget.steps}"
                model_ref = {
                    "model_id": model_id,
                    "label": f"{arm}@{budget.steps}",
                    "parent_id": variant.model_id,
                    "run_id": self.run_id,
                    "modification": {"name": attack.label, "seed": seed},
                    "budget": budget_dict,
                }
                if self.spec.keep_checkpoints:
                    name = f"{self.run_id}-{arm.replace('/', '-')}-s{seed}-{budget.steps}"
                    model_ref["source"] = f"cache:{name}"
                    save_model(model, loaded.tokenizer, name)
                evaluation = {
                    "eval_id": f"{self.run_id}/{arm}/s{seed}/{budget.steps}",
                    "run_id": self.run_id,
                    "model_id": model_id,
                    "spec": self.spec.eval.model_dump(mode="json"),
                    "generations": result.generations,
                    "verdicts": result.verdicts,
                    "metrics": result.metrics,
                    "seconds": result.seconds,
                    "capability_items": result.capability_items,
                }
            self.store.save_milestone(
                self.run_id,
                arm,
                seed,
                budget.steps,
                budget_dict,
                train_loss=budget.loss,
                model=model_ref,
                evaluation=evaluation,
            )
            if stops and seed_break_cost(self.store, self.run_id, self.spec, arm, seed, references)["broken"]:
                raise _Broken(budget.steps)

        try:
            attack.run(loaded, self.ctx, seed=seed, milestones=milestones, on_milestone=on_milestone)
        except _Broken as broken:
            log.info("%s, seed %d: broken at step %s, where its trajectory ends", arm, seed, broken.args[0])
        except DivergedError as exc:
            # A measured outcome of this trajectory only: record it and go on with the others.
            budget = getattr(exc, "budget", None)
            record = {
                "step": getattr(exc, "step", None),
                "error": str(exc),
                "budget": None if budget is None else {k: getattr(budget, k) for k in BUDGET_KEYS},
            }
            self.store.save_divergence(self.run_id, arm, seed, record)
            log.warning("%s, seed %d: %s; recorded as diverged, the other trajectories go on", arm, seed, exc)
            progress.stage(f"{arm}, seed {seed}: diverged at step {record['step']} (recorded; going on)")

    # -- the whole run ---------------------------------------------------------------------------------------

    @contextmanager
    def _variants_lock(self) -> Iterator[None]:
        """Only one process at a time prepares the variants (trains defenses, evaluates parents)."""
        lock_dir = paths.home() / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{self.run_id}.variants.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _prepare(self) -> tuple[list[Variant], list[tuple[str, Variant, Any, ComponentRef]]]:
        with self._variants_lock():
            variants = self.variants()
        arms = self.arms(variants)
        for arm, variant, attack, ref in arms:
            self.store.add_arm(
                self.run_id,
                arm,
                attack={"name": ref.name, "args": _validated_args(ref, "attack")},
                defense=variant.defense,
                parent_model_id=variant.model_id,
                data=attack.describe_data(self.ctx),
            )
        return variants, arms

    def execute(self) -> RunOutcome:
        start = time.perf_counter()
        previous = self.store.get_run(self.run_id)
        if previous is not None and previous["status"] == "complete":
            return RunOutcome(self.run_id, True, "complete", 0.0)
        prov = provenance.collect(
            data_sets=[s.describe() for s in self.sets.values()] + [t.describe() for t in self.tasks],
            judges=[{"name": j.name, "version": j.version} for j in self.judges],
            seeds=self.spec.seeds,
        )
        self.store.start_run(self.run_id, "run", self.spec.model_dump(mode="json"), prov)
        with self.store.beating(self.run_id):  # a killed run reads as interrupted, not running
            return self._execute(start)

    def _execute(self, start: float) -> RunOutcome:
        try:
            variants, arms = self._prepare()
            pairs = [(arm, seed) for arm, *_ in arms for seed in self.spec.seeds]
            by_arm = {arm: (variant, attack) for arm, variant, attack, _ in arms}
            references = {arm: [variant.eval_id, variants[0].eval_id] for arm, variant, *_ in arms}
            shard = self.shard
            mine = [p for i, p in enumerate(pairs) if shard is None or i % shard[1] == shard[0]]
            for k, (arm, seed) in enumerate(mine, 1):
                self.trajectory(arm, *by_arm[arm], seed, references[arm], position=f"{k}/{len(mine)}")
            if self.shard is not None:  # the final run without a shard measures and summarizes
                elapsed = time.perf_counter() - start
                self.store.add_run_seconds(self.run_id, elapsed)
                return RunOutcome(self.run_id, False, "shard done", elapsed)
            for arm, *_ in arms:
                save_break_costs(self.store, self.run_id, self.spec, arm, references[arm])
            save_summaries(self.store, self.run_id, self.spec, variants)
            diverged = {(d["arm"], d["seed"]) for d in self.store.divergences(self.run_id)}
            if pairs and diverged >= set(pairs):  # nothing but divergences: the run itself diverged
                raise DivergedError(
                    f"every trajectory diverged ({len(pairs)}): "
                    + "; ".join(
                        f"{d['arm']} seed {d['seed']} ({d['error']})"
                        for d in self.store.divergences(self.run_id)
                    )
                )
        except DivergedError as exc:
            self.store.finish_run(self.run_id, "diverged", error=str(exc), wall_seconds=self._spent(start))
            raise
        except BaseException as exc:
            self.store.finish_run(
                self.run_id,
                "failed",
                error=f"{type(exc).__name__}: {exc}",
                wall_seconds=self._spent(start),
            )
            raise
        wall = self._spent(start)
        self.store.finish_run(self.run_id, "complete", wall_seconds=wall)
        return RunOutcome(self.run_id, False, "complete", wall)

    def _spent(self, start: float) -> float:
        """This process's time since ``start`` plus what the run's earlier attempts and its shards recorded
        (read now: a shard beside this process may have added its time since)."""
        recorded = (self.store.get_run(self.run_id) or {}).get("wall_seconds") or 0.0
        return time.perf_counter() - start + recorded


def save_break_costs(
    store: Store, run_id: str, spec: RunSpec, arm: str, reference_eval_ids: list[str]
) -> None:
    """Break cost of one arm per seed and over seeds (seed -1), from its stored milestones.

    Capability counts as retained while benign NLL stays within the tolerance of the *highest* NLL among the
    reference evaluations: the arm's parent and, for a defended model, the undefended (safeguarded) model.
    So a defense that lowered benign NLL is not credited with "resistance" that only comes from a stricter
    bound: the attacker need not end up more capable than the model released without the defense.
    """
    per_seed = []
    diverged = {d["seed"]: d for d in store.divergences(run_id) if d["arm"] == arm}
    left_out = []
    for seed in spec.seeds:
        cost = seed_break_cost(store, run_id, spec, arm, seed, reference_eval_ids)
        if seed in diverged:
            if not cost["broken"]:  # neither broken nor a lower bound: no break cost at all
                left_out.append(seed)
                continue
            cost["detail"] = {**cost["detail"], "diverged_after": diverged[seed]["step"]}
        store.save_break_cost(run_id, arm, seed, cost)
        per_seed.append(cost)
    if not per_seed:
        return  # every seed diverged: the arm has no break cost (see store.divergences)
    aggregate = aggregate_seeds(per_seed)
    if left_out:
        aggregate["detail"]["diverged_seeds"] = left_out
        aggregate["detail"]["statistic"] += f"; {len(left_out)} diverged seed(s) left out"
    store.save_break_cost(run_id, arm, -1, aggregate)


def seed_break_cost(
    store: Store, run_id: str, spec: RunSpec, arm: str, seed: int, reference_eval_ids: list[str]
) -> dict[str, Any]:
    """Break cost of one trajectory from the milestones stored so far (see :func:`save_break_costs`)."""
    references = [store.metrics(e) for e in reference_eval_ids]
    nlls = [(m.get("benign_nll") or {}).get("value") for m in references]
    parent_nll = max((v for v in nlls if v is not None), default=None)
    bc = spec.break_cost
    metric = bc.accuracy.metric if bc.accuracy is not None else None
    floor = None
    if bc.accuracy is not None:
        accuracies = [(m.get(bc.accuracy.metric) or {}).get("value") for m in references]
        measured = [v for v in accuracies if v is not None]
        if not measured:
            raise ConfigError(
                f"break_cost.accuracy.metric {metric!r} was not measured before the attack"
                f" (evaluations {', '.join(reference_eval_ids)})"
            )
        floor = bc.accuracy.floor(min(measured))
    points = [
        Point(
            r["step"],
            r["examples"],
            r["tokens"],
            r["flops"],
            r["seconds"],
            r["harmful_compliance_rate"],
            r.get("benign_nll"),
            r.get(metric) if metric else None,
        )
        for r in store.milestones(run_id, arm)
        if r["seed"] == seed
    ]
    threshold, rule = run_threshold(spec, references[-1])
    return break_cost(
        points,
        threshold=threshold,
        threshold_rule=rule,
        parent_nll=parent_nll,
        tolerance=bc.capability_tolerance,
        accuracy_floor=floor,
        accuracy_metric=metric,
        interpolate=not _one_shot(store, run_id, arm),
    )


def run_threshold(spec: RunSpec, start_metrics: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """The absolute break threshold of a run and, when ``break_cost.threshold_rise`` makes it relative, its
    rule. ``start_metrics``: the undefended variant's metrics before any attack (the released model, or the
    safeguarded one when the run has a safeguard), so every arm of the run shares one threshold."""
    bc = spec.break_cost
    rate = (start_metrics.get("harmful_compliance_rate") or {}).get("value")
    threshold = bc.effective_threshold(None if rate is None else float(rate))
    if bc.threshold_rise is None:
        return threshold, None
    _, rule = relative_threshold(
        float(rate), bc.threshold_rise, "released" if spec.safeguard is None else "safeguarded"
    )
    return threshold, rule


def _one_shot(store: Store, run_id: str, arm: str) -> bool:
    """Whether the arm's attack is a one-shot modification (see :class:`~tamperlab.attacks.base.Attack`)."""
    row = next((a for a in store.arms(run_id) if a["arm"] == arm), None)
    if row is None:
        return False
    return bool(build_attack(row["attack"]["name"], row["attack"]["args"]).one_shot)


def stops_when_broken(spec: RunSpec, attack: Any) -> bool:
    """Whether an arm's trajectories end at the milestone that breaks them."""
    return spec.break_cost.stop_when_broken and not attack.full_trajectory


def trajectory_finished(
    store: Store, run_id: str, spec: RunSpec, arm: str, seed: int, references: list[str], stops: bool
) -> bool:
    """Every milestone stored, recorded as diverged, or (``stops``) a stored milestone already breaks it."""
    if any(d["arm"] == arm and d["seed"] == seed for d in store.divergences(run_id)):
        return True
    done = store.completed_steps(run_id, arm, seed)
    if set(spec.milestones) <= done:
        return True
    return stops and bool(done) and seed_break_cost(store, run_id, spec, arm, seed, references)["broken"]


def save_summaries(store: Store, run_id: str, spec: RunSpec, variants: list[Variant]) -> None:
    """The run's headline summary, and its immunization summary when it has defenses."""
    if spec.defenses:
        from tamperlab.evals.immunization import immunization_summary

        store.put_summary(run_id, "immunization", immunization_summary(store, run_id))
    start = next((v for v in variants if v.defense is None), variants[0] if variants else None)
    threshold, rule = run_threshold(spec, store.metrics(start.eval_id) if start is not None else {})
    store.put_summary(
        run_id,
        "headline",
        {
            "threshold": threshold,
            **({"threshold_rule": rule} if rule is not None else {}),
            "capability_tolerance": spec.break_cost.capability_tolerance,
            "accuracy_bound": (
                spec.break_cost.accuracy.model_dump(mode="json") if spec.break_cost.accuracy else None
            ),
            "capability_tasks": [t.label for t in spec.eval.capability],
            "judge": spec.eval.judges[0].name,
            "variants": [v.__dict__ for v in variants],
        },
    )


def summarize_stored(store: Store, run_id: str) -> list[str]:
    """Break costs and summaries of a stored run from what the store holds, training nothing (a run cut
    short).

    Uses the run's own stored spec. Arms whose every seed finished (reached every milestone, or the one that
    breaks it) get break costs; the others are returned, left out, and read "missing" in the immunization
    summary. The run's status is not changed.
    """
    from tamperlab.config import validate

    record = store.get_run(run_id)
    if record is None:
        raise StoreError(f"run {run_id} is not in the store")
    spec = validate(RunSpec, record["spec"], f"run {run_id}")
    variants: dict[str, Variant] = {}
    incomplete = []
    arms = store.arms(run_id)
    undefended = next((a for a in arms if not a.get("defense")), None)
    for arm in arms:
        label = arm["arm"].split("/", 1)[0]
        if label not in variants:
            source = (store.get_model(arm["parent_model_id"]) or {}).get("source") or ""
            variants[label] = Variant(
                label,
                source.removeprefix("cache:"),
                arm["parent_model_id"],
                f"{run_id}/{arm['parent_model_id']}",
                arm["defense"],
            )
        references = [variants[label].eval_id]
        if undefended is not None:
            references.append(f"{run_id}/{undefended['parent_model_id']}")
        stops = stops_when_broken(spec, build_attack(arm["attack"]["name"], arm["attack"]["args"]))
        if all(
            trajectory_finished(store, run_id, spec, arm["arm"], seed, references, stops)
            for seed in spec.seeds
        ):
            save_break_costs(store, run_id, spec, arm["arm"], references)
        else:
            incomplete.append(arm["arm"])
    if not variants:
        raise StoreError(
            f"run {run_id} has no attack arms in the store (it stopped before its first attack):"
            " nothing to summarize; rerun it to continue"
        )
    save_summaries(store, run_id, spec, list(variants.values()))
    return incomplete


def _registry(kind: str) -> Any:
    if kind == "attack":
        from tamperlab.attacks.base import ATTACKS as registry
    else:
        from tamperlab.defenses.base import DEFENSES as registry
    return registry


def _validated_args(ref: ComponentRef, kind: str = "defense") -> dict[str, Any]:
    """A component's args with defaults filled in, as stored (so the store can rebuild it exactly)."""
    return _registry(kind).validate_args(ref.name, ref.args)


def _fingerprint_args(ref: ComponentRef, kind: str = "defense") -> dict[str, Any]:
    """A component's validated args as run ids and cache keys hash them (``Registry.fingerprint_args``)."""
    return _registry(kind).fingerprint_args(ref.name, _validated_args(ref, kind))


def _recipe_version(defense: Any) -> list[str]:
    """``[version]`` of a defense that declares one (see :class:`~tamperlab.defenses.base.Defense`)."""
    version = defense.version
    return [version] if version is not None else []


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name.rsplit("/", 1)[-1])[:60]


def run(spec: RunSpec, store: Store, shard: tuple[int, int] | None = None) -> RunOutcome:
    """Execute a run spec (skipping whatever the store already holds)."""
    return Pipeline(spec, store, shard).execute()
