"""``run_search``: an attacker that searches an attack's hyperparameters for the most harmful modification
that keeps the model capable.

Each trial is one attack trajectory run by the ordinary pipeline: the search's RunSpec with ONE attack (the
trial's arguments) and ``milestones = [0, steps]``, executed into the store. A trial is therefore stored like
any run (lineage, generations, verdicts), has a deterministic run id, and a trial whose configuration was
already measured (a repeat suggestion, a rerun) costs nothing.

Objective: maximise ``objective`` (harmful compliance) at the trial's last milestone, subject to the
capability bound: benign NLL at most ``(1 + ε)`` times the attacked model's parent's, or KL from the parent at
most the bound. The bound is given to Optuna through its constraints API (``Trial.set_constraint``: a value
``<= 0`` is feasible), so TPE learns where the feasible region is, and the best trial is chosen among feasible
trials only: an infeasible trial is recorded with its measured compliance and ``feasible: false`` and is never
reported as best. A diverged trial is recorded as infeasible with compliance 0.

Resuming: the study lives in SQLite beside the store (``<store>.search.sqlite``), named after the spec, so
running the same spec again continues it up to ``n_trials``. The sampler is reseeded before every trial with
``sampler_seed + (number of completed trials)``, so the k-th suggestion depends only on the seed and the first
k trials: an interrupted and resumed search suggests exactly what an uninterrupted one would. A trial left
running by a killed process is marked failed and its parameters are queued again (the pipeline then resumes
its stored milestones).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamperlab.config import RunSpec, spec_id, validate
from tamperlab.errors import ConfigError, DivergedError
from tamperlab.search.spec import TRIAL_KEYS, ParamSpace, SearchSpec
from tamperlab.search.worst_case import capability_loss

log = logging.getLogger(__name__)

DIVERGED_CONSTRAINT = 1e6
"""Constraint value recorded for a diverged trial (any positive value is infeasible)."""


def import_optuna() -> Any:
    """Optuna, or a clear error naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("the attacker search needs optuna: pip install 'tamperlab[search]'") from None
    return optuna


@dataclass
class TrialMeasure:
    """What one trial's run measured.

    Attributes:
        run_id: the trial's run in the store.
        status: 'complete' or 'diverged'.
        value: the objective at the last milestone (0 when diverged).
        capability: relative NLL increase (``nll / parent_nll - 1``) or KL, per the bound's measure.
        detail: the last milestone's budget and metrics as plain values.
    """

    run_id: str
    status: str
    value: float
    capability: float | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchResult:
    """A finished (or resumed) search.

    Attributes:
        study_name, storage: the Optuna study and its SQLite URL.
        trials: one plain record per completed trial, in order: number, params, value, feasible, capability,
            constraint, run_id, status, budget and metrics of its last milestone.
        best: the best feasible trial's record (None when no trial is feasible).
        best_so_far: ``[{"trials": k, "best": value or None}]`` after each completed trial.
        best_spec_path: the best trial's RunSpec YAML (None when no trial is feasible).
        best_spec: that RunSpec as a plain dict.
    """

    study_name: str
    storage: str
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_so_far: list[dict[str, Any]]
    best_spec_path: str | None = None
    best_spec: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "trials": self.trials,
            "best": self.best,
            "best_so_far": self.best_so_far,
            "best_spec_path": self.best_spec_path,
        }


TrialRunner = Callable[[RunSpec, Any, SearchSpec], TrialMeasure]
"""``runner(run_spec, store, search_spec) -> TrialMeasure``; the default runs the pipeline."""


# -- trials --------------------------------------------------------------------------------------------------


def trial_run_spec(spec: SearchSpec, params: dict[str, Any]) -> RunSpec:
    """The RunSpec of one trial: the search's run with one attack (fixed args + sampled args), milestones
    ``[0, steps]`` and the trial's seed, trained to ``steps`` even when step 0 is already broken."""
    args = dict(spec.fixed_args)
    args.update({k: v for k, v in params.items() if k not in TRIAL_KEYS})
    steps = int(params.get("steps", max(spec.run.milestones)))
    seed = int(params.get("seed", spec.run.seeds[0]))
    data = spec.run.model_dump(mode="json")
    data.update(
        attacks=[{"name": spec.attack, "args": args}], milestones=sorted({0, max(1, steps)}), seeds=[seed]
    )
    data["break_cost"] = {**data.get("break_cost", {}), "stop_when_broken": False}  # measured at `steps`
    return validate(RunSpec, data, f"search trial {params}")


def measure_trial(store: Any, run_id: str, spec: SearchSpec, steps: int, seed: int) -> TrialMeasure:
    """Read a trial's last milestone from the store (the arm of ``spec.variant``); a trial whose trajectory
    diverged is measured as diverged."""
    for d in store.divergences(run_id):
        if d["arm"].startswith(spec.variant + "/") and d["seed"] == seed:
            return TrialMeasure(run_id, "diverged", 0.0, None, {"error": d["error"], "step": d["step"]})
    rows = [
        r for r in store.milestones(run_id) if r["arm"].startswith(spec.variant + "/") and r["seed"] == seed
    ]
    last = max((r for r in rows), key=lambda r: r["step"], default=None)
    parent = next((r for r in rows if r["step"] == 0), None)
    if last is None or parent is None:
        raise ConfigError(f"search: run {run_id} has no milestones for variant {spec.variant!r}")
    value = last.get(spec.objective)
    if value is None:
        raise ConfigError(f"search: run {run_id} measured no {spec.objective!r}")
    capability = capability_loss(last, parent, spec.capability.measure)
    keep = (
        "step",
        "examples",
        "tokens",
        "flops",
        "seconds",
        "train_loss",
        "harmful_compliance_rate",
        "benign_nll",
        "kl_from_reference",
        "incoherent_rate",
        "harmless_refusal_rate",
        "overrefusal_rate",
    )
    detail = {k: last.get(k) for k in keep} | {
        "arm": last["arm"],
        "parent_benign_nll": parent.get("benign_nll"),
    }
    return TrialMeasure(run_id, "complete", float(value), capability, detail)


def pipeline_runner(run_spec: RunSpec, store: Any, spec: SearchSpec) -> TrialMeasure:
    """Run one trial through :class:`tamperlab.pipeline.Pipeline` and measure it from the store."""
    from tamperlab.pipeline import Pipeline

    pipeline = Pipeline(run_spec, store)
    try:
        pipeline.execute()
    except DivergedError as exc:
        log.info("trial diverged: %s", exc)
        return TrialMeasure(pipeline.run_id, "diverged", 0.0, None, {"error": str(exc)})
    return measure_trial(store, pipeline.run_id, spec, max(run_spec.milestones), run_spec.seeds[0])


def constraint_of(measure: TrialMeasure, spec: SearchSpec) -> float:
    """Optuna constraint: ``capability - bound`` (<= 0 is feasible); diverged or unmeasured is infeasible."""
    if measure.status != "complete" or measure.capability is None or not math.isfinite(measure.capability):
        return DIVERGED_CONSTRAINT
    return measure.capability - spec.capability.bound


def _suggest(trial: Any, name: str, param: ParamSpace) -> Any:
    if param.type == "categorical":
        return trial.suggest_categorical(name, param.choices)
    if param.type == "int":
        return trial.suggest_int(name, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(name, float(param.low), float(param.high), log=param.log)


def sample_params(trial: Any, spec: SearchSpec) -> dict[str, Any]:
    """Sample the space in order, skipping parameters whose ``when`` does not hold."""
    params: dict[str, Any] = {}
    for name, param in spec.space.items():
        known = {**spec.fixed_args, **params}  # a condition may name a fixed argument
        if param.when and any(known.get(k) != v for k, v in param.when.items()):
            continue
        params[name] = _suggest(trial, name, param)
    return params


# -- the study -----------------------------------------------------------------------------------------------


def study_name_for(spec: SearchSpec) -> str:
    """The study's default name: a hash of the spec (trial count and output path left out) and the model's
    identity, so the same search against the same model resumes and anything else starts afresh."""
    import hashlib

    from tamperlab.models.identity import model_key

    if spec.study_name:
        return spec.study_name
    keyed = spec.model_copy(update={"n_trials": 1, "best_spec_path": None})
    model = hashlib.sha256(model_key(spec.run.model).encode()).hexdigest()[:8]
    return f"search-{spec_id(keyed)[:12]}-{model}"


def storage_path(store: Any) -> Path:
    """The study's SQLite file beside the store: ``<store stem>.search.sqlite``."""
    path = Path(store.path)
    return path.with_name(path.stem + ".search.sqlite")


def _trial_record(trial: Any) -> dict[str, Any]:
    attrs = trial.user_attrs
    constraint = trial.constraints.get("capability")
    return {
        "number": trial.number,
        "params": dict(trial.params),
        "value": trial.value,
        "feasible": constraint is not None and constraint <= 0,
        "capability": attrs.get("capability"),
        "constraint": constraint,
        "run_id": attrs.get("run_id"),
        "status": attrs.get("status"),
        "detail": attrs.get("detail", {}),
    }


def summarize(study: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]]]:
    """(trial records, best feasible record, best-so-far curve) of the completed trials, in trial order."""
    optuna = import_optuna()
    done = sorted(
        study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]), key=lambda t: t.number
    )
    records = [_trial_record(t) for t in done]
    best: dict[str, Any] | None = None
    curve = []
    for k, record in enumerate(records, start=1):
        if record["feasible"] and (best is None or record["value"] > best["value"]):
            best = record
        curve.append({"trials": k, "best": None if best is None else best["value"]})
    return records, best, curve


def _requeue_stale(study: Any) -> None:
    """Trials left RUNNING by a killed process: mark them failed and queue their parameters again."""
    optuna = import_optuna()
    for trial in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
        log.info("search: trial %d was interrupted; queueing its parameters again", trial.number)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), skip_if_exists=False)


def write_best_spec(path: Path, run_spec: dict[str, Any], record: dict[str, Any], study_name: str) -> Path:
    """Write the best trial's RunSpec as YAML with a comment saying where it came from."""
    import yaml

    header = (
        f"# Best feasible trial {record['number']} of search {study_name}: "
        f"{record['detail'].get('arm', '')} reached {record['value']:.3f} "
        f"with capability {record['capability']}.\n"
        f"# Rerun: tamperlab run {path.name}   (same spec, same run id: the store already holds it)\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(run_spec, sort_keys=False))
    return path


def run_search(spec: SearchSpec, store: Any, *, runner: TrialRunner | None = None) -> SearchResult:
    """Run (or resume) the search up to ``spec.n_trials`` completed trials.

    Args:
        spec: the search.
        store: the :class:`tamperlab.store.Store` trials are run into; the study's SQLite file sits beside it.
        runner: runs one trial (default: the pipeline); tests pass a stand-in.

    Returns:
        A :class:`SearchResult`: every completed trial, the best feasible one, best-so-far per trial count,
        and the best configuration written as a rerunnable RunSpec YAML.
    """
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runner = runner or pipeline_runner
    name = study_name_for(spec)
    storage = f"sqlite:///{storage_path(store)}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    _requeue_stale(study)
    complete = optuna.trial.TrialState.COMPLETE
    from tamperlab.progress import progress_bar

    already = len(study.get_trials(deepcopy=False, states=[complete]))
    with progress_bar("searching", max(0, spec.n_trials - already)) as advance:
        while (n_done := len(study.get_trials(deepcopy=False, states=[complete]))) < spec.n_trials:
            # Reseeded per trial: the k-th suggestion depends only on the seed and the first k trials.
            study.sampler = optuna.samplers.TPESampler(
                seed=spec.sampler_seed + n_done, n_startup_trials=spec.n_startup_trials
            )
            trial = study.ask()
            params = sample_params(trial, spec)
            try:
                run_spec = trial_run_spec(spec, params)
                measure = runner(run_spec, store, spec)
            except BaseException:
                # Interrupted or failed: the same parameters run first when the search is resumed (the
                # pipeline then picks up the milestones already stored).
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                study.enqueue_trial(params, skip_if_exists=False)
                raise
            trial.set_user_attr("run_id", measure.run_id)
            trial.set_user_attr("status", measure.status)
            trial.set_user_attr("capability", measure.capability)
            trial.set_user_attr("detail", measure.detail)
            trial.set_user_attr("run_spec", run_spec.model_dump(mode="json"))
            trial.set_constraint("capability", constraint_of(measure, spec))
            study.tell(trial, measure.value)
            log.info(
                "trial %d: %s -> %.3f (capability %s)",
                trial.number,
                params,
                measure.value,
                measure.capability,
            )
            advance(1)
    records, best, curve = summarize(study)
    result = SearchResult(name, storage, records, best, curve)
    if best is not None:
        best_trial = study.trials[best["number"]]
        run_spec = best_trial.user_attrs["run_spec"]
        path = (
            Path(spec.best_spec_path)
            if spec.best_spec_path
            else storage_path(store).with_name(f"{name}.best.yaml")
        )
        result.best_spec_path = str(write_best_spec(path, run_spec, best, name))
        result.best_spec = run_spec
    return result
