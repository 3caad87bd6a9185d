"""`tamperlab defend`: apply one defense to a model, cache the defended model, evaluate before and after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tamperlab.config import ComponentRef, ModelSpec, RunSpec
from tamperlab.pipeline import Pipeline
from tamperlab.store import Store


@dataclass
class DefendResult:
    parent: str
    name: str
    before: dict[str, Any]
    after: dict[str, Any]
    budget: dict[str, Any]


def defend(model: ModelSpec, defense: ComponentRef, store: Store) -> DefendResult:
    """Defend ``model`` with ``defense`` (cached under a deterministic name), recording a 'defend' run."""
    spec = RunSpec(model=model, safeguard=None, defenses=[defense], attacks=[])
    pipeline = Pipeline(spec, store)
    store.start_run(pipeline.run_id, "defend", spec.model_dump(mode="json"))
    try:
        variants = pipeline.variants()
    except BaseException as exc:
        store.finish_run(pipeline.run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    store.finish_run(pipeline.run_id, "complete")
    parent, defended = variants[0], variants[1]
    record = store.get_model(defended.model_id) or {}
    return DefendResult(
        parent=parent.model_name,
        name=defended.model_name,
        before=store.metrics(parent.eval_id),
        after=store.metrics(defended.eval_id),
        budget=record.get("budget") or {},
    )
