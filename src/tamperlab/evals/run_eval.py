"""`tamperlab eval`: evaluate one model as it is and store the result under a deterministic id."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from tamperlab import provenance
from tamperlab.config import EvalSpec, ModelSpec, Spec, default_capability_tasks, spec_id
from tamperlab.data.sets import data_fingerprints
from tamperlab.evals.capability_suite import LoadedTask, load_tasks
from tamperlab.evals.capability_suite import data_fingerprints as capability_fingerprints
from tamperlab.evals.safety import build_judges, evaluate, load_eval_sets
from tamperlab.models.loading import load_model
from tamperlab.store import Store

log = logging.getLogger(__name__)


class EvalRunSpec(Spec):
    """What `tamperlab eval` runs: one model under one evaluation spec."""

    model: ModelSpec = Field(default_factory=ModelSpec, description="The model evaluated.")
    eval: EvalSpec = Field(
        default_factory=lambda: EvalSpec(capability=default_capability_tasks()),
        description="Prompt sets, judges, limits and capability benchmarks.",
    )


@dataclass
class EvalOutcome:
    run_id: str
    reused: bool
    metrics: dict[str, dict[str, Any]]
    seconds: float


def eval_run_id(spec: EvalRunSpec, tasks: list[LoadedTask] | None = None) -> str:
    """Hash of the resolved spec with the model's identity from its content (new weights at one path get a new
    id; a copied directory keeps its id; see :func:`tamperlab.models.identity.model_key`) and the prompt sets'
    and capability data's content fingerprints (so changed data gets a new id)."""
    from tamperlab.models.identity import model_key

    tasks = load_tasks(spec.eval) if tasks is None else tasks
    keyed = spec.model_copy(update={"model": spec.model.model_copy(update={"name": model_key(spec.model)})})
    data = data_fingerprints(spec.model_dump(mode="json")) + capability_fingerprints(tasks)
    return spec_id(keyed, prefix="eval-", extra=data)


def run_eval(spec: EvalRunSpec, store: Store, *, force: bool = False) -> EvalOutcome:
    """Evaluate the model unless the store already holds this exact evaluation."""
    start = time.perf_counter()
    # Check the cheap things (judge names, data files) before touching the model, which may need converting.
    judges = build_judges(spec.eval)
    sets = load_eval_sets(spec.eval)
    tasks = load_tasks(spec.eval)
    run_id = eval_run_id(spec, tasks)
    if not force and store.evaluation_status(run_id) == "complete":
        log.info("reusing stored evaluation %s", run_id)
        return EvalOutcome(run_id, True, store.metrics(run_id), 0.0)
    prov = provenance.collect(
        data_sets=[s.describe() for s in sets.values()] + [t.describe() for t in tasks],
        judges=[{"name": j.name, "version": j.version} for j in judges],
    )
    from tamperlab.pipeline import add_released_model

    store.start_run(run_id, "eval", spec.model_dump(mode="json"), prov)
    with store.beating(run_id):  # a killed evaluation reads as interrupted, not running
        try:
            loaded = load_model(spec.model)
            reference = load_model(spec.eval.reference_model).model if spec.eval.reference_model else None
            model_id = f"model-{run_id.removeprefix('eval-')}"
            add_released_model(store, spec.model, model_id, run_id=run_id, source=loaded.source)
            result = evaluate(
                loaded.model,
                loaded.tokenizer,
                spec.eval,
                judges=judges,
                reference_model=reference,
                sets=sets,
                tasks=tasks,
            )
            store.save_evaluation(
                run_id,
                run_id=run_id,
                model_id=model_id,
                spec=spec.eval.model_dump(mode="json"),
                generations=result.generations,
                verdicts=result.verdicts,
                metrics=result.metrics,
                seconds=result.seconds,
                capability_items=result.capability_items,
            )
        except BaseException as exc:
            store.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
    wall = time.perf_counter() - start
    store.finish_run(run_id, "complete", wall_seconds=wall)
    return EvalOutcome(run_id, False, store.metrics(run_id), wall)
