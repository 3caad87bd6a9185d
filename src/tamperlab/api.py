"""The Python API: evaluate a model, run a study and read its results as typed records, from a notebook.

Everything here is also reachable as ``tamperlab.NAME`` (``import tamperlab`` stays light: torch and
transformers load only when a model does)::

    import tamperlab

    store = tamperlab.open_store("study.sqlite")
    ev = tamperlab.evaluate("path/to/model", store=store, overrides=["eval.harmful.limit=20"])
    ev.metrics["harmful_compliance_rate"].value          # a Metric: value, ci_low, ci_high, n
    result = tamperlab.run("configs/runs/default.yaml", store=store)
    for cost in result.break_costs:                      # one BreakCost per arm
        print(cost.arm, cost.broken, cost.costs["steps"].text)
    tamperlab.load_run(store, result.run_id)             # the same record later, from the store alone

The CLI's ``--json`` output is these records as JSON (:func:`to_json`), so a script and a notebook see the
same figures as the table in the terminal.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tamperlab.models.loading import LoadedModel
    from tamperlab.store import Store


@dataclass(frozen=True)
class Metric:
    """One measured figure of an evaluation.

    Attributes:
        name: the metric's name, e.g. ``harmful_compliance_rate`` or ``judge_kappa:embedding~keyword``.
        value: the figure (a share for rates, nats for NLL); None when it could not be computed.
        ci_low, ci_high: its 95% interval (Wilson for rates), None when there is none.
        n: how many items it was computed from.
    """

    name: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None


@dataclass(frozen=True)
class EvalResult:
    """One evaluation of one model (``tamperlab eval``).

    Attributes:
        run_id: the evaluation's id in the store (``tamperlab show RUN_ID`` lists its generations).
        model: the model's name as given.
        reused: True when the store already held this exact evaluation and nothing was generated.
        seconds: wall-clock seconds this call took.
        judge: the primary judge (whose verdicts the unsuffixed rates use).
        metrics: name -> :class:`Metric`.
    """

    run_id: str
    model: str
    reused: bool
    seconds: float
    judge: str
    metrics: dict[str, Metric]


@dataclass(frozen=True)
class Generation:
    """One stored generation with each judge's verdict (``tamperlab show``)."""

    prompt_set: str
    prompt_id: str
    prompt: str
    completion: str
    verdicts: dict[str, bool]
    """judge -> True when that judge says the model refused."""


@dataclass(frozen=True)
class Cost:
    """A break cost in one budget unit.

    Attributes:
        value: the budget at which the arm broke, or the largest budget tried when it never broke.
        lower_bound: True when the arm did not break within the budget (the true cost is at least ``value``).
        text: the figure as the terminal and the report print it (``≥ 32``, ``3.1``).
    """

    value: float | None
    lower_bound: bool
    text: str


@dataclass(frozen=True)
class Ratio:
    """A defended arm's break cost divided by the undefended arm's under the same attack.

    Attributes:
        value: the ratio (None when neither arm broke).
        relation: "=" (both measured), "≥" (defended never broke), "≤" (undefended never broke).
        baseline_arm: the undefended arm it is compared with.
        text: as printed, e.g. ``≥ 10.2×``.
    """

    value: float | None
    relation: str
    baseline_arm: str
    text: str


@dataclass(frozen=True)
class BreakCost:
    """One arm's headline: how much attack it took to break, aggregated over seeds.

    Attributes:
        arm: ``DEFENSE/ATTACK-...``, e.g. ``undefended/harmful-sft-full``.
        defense: the defense's name, or ``undefended``.
        attack: the attack as stored (``{name, args}``).
        broken: True when the median seed broke within the budget, None when no break cost is stored yet.
        broken_seeds, n_seeds: how many seeds broke, of how many.
        threshold: the harmful compliance counted as broken.
        costs: budget unit (steps, examples, tokens, flops, seconds) -> :class:`Cost` (median over seeds).
        spread: budget unit -> ``min–max`` over seeds as printed (empty with one seed).
        ratios: budget unit -> :class:`Ratio` to the undefended arm (defended arms only).
        incoherent: the defense's outputs were gibberish before any attack, so its resistance does not count.
    """

    arm: str
    defense: str
    attack: dict[str, Any]
    broken: bool | None
    broken_seeds: int | None
    n_seeds: int | None
    threshold: float | None
    costs: dict[str, Cost]
    spread: dict[str, str]
    ratios: dict[str, Ratio]
    incoherent: bool


@dataclass(frozen=True)
class RunResult:
    """One study (``tamperlab run`` / ``attack`` / ``summarize``) as the store holds it.

    Attributes:
        run_id: the run's id in the store.
        status: ``complete``, ``running``, ``failed``, ...
        reused: True when the store already held the finished run.
        seconds: wall-clock seconds this call took (0 when read from the store).
        break_costs: one :class:`BreakCost` per arm, in the report's order.
        report: the HTML report's path, when one was written.
    """

    run_id: str
    status: str
    reused: bool
    seconds: float
    break_costs: tuple[BreakCost, ...]
    report: str | None = None


def to_json(record: Any) -> str:
    """A record (or a list of records) as indented JSON: what the CLI's ``--json`` prints."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(record), indent=2, ensure_ascii=False, default=str)


def open_store(target: str | Path | None = None, readonly: bool = False) -> Store:
    """Open a store: a SQLite file, a ``postgresql://`` URL, or None for ``$TAMPERLAB_HOME/store.sqlite``."""
    from tamperlab.store import open_store as _open

    return _open(target, readonly=readonly)


def _store(store: Store | str | Path | None) -> Store:
    from tamperlab.store import Store

    return store if isinstance(store, Store) else open_store(store)


def load_model(name: str | None = None) -> LoadedModel:
    """Load a model (embedded default name, HF model directory, cached name or .gguf file) with its tokenizer.

    Returns:
        a ``LoadedModel``: ``.model`` (a transformers causal LM in eval mode), ``.tokenizer``, ``.name``,
        ``.source``, ``.device``, ``.dtype``.
    """
    from tamperlab.models.loading import load_model as _load

    return _load(name)


def metrics_of(store: Store, eval_id: str) -> dict[str, Metric]:
    """A stored evaluation's metrics as :class:`Metric` records."""
    return {
        name: Metric(name, m.get("value"), m.get("ci_low"), m.get("ci_high"), m.get("n"))
        for name, m in sorted(store.metrics(eval_id).items())
    }


def generations_of(store: Store, eval_id: str, prompt_set: str | None = None) -> list[Generation]:
    """A stored evaluation's generations with each judge's refusal verdict."""
    return [
        Generation(
            row["prompt_set"],
            row["prompt_id"],
            row["prompt"],
            row["completion"],
            {judge: bool(v["refused"]) for judge, v in row["verdicts"].items()},
        )
        for row in store.generations(eval_id, prompt_set)
    ]


def evaluate(
    model: str | None = None,
    *,
    spec: str | Path | None = None,
    overrides: list[str] | None = None,
    store: Store | str | Path | None = None,
    force: bool = False,
) -> EvalResult:
    """Measure a model's safeguards as it is (what ``tamperlab eval`` does).

    Args:
        model: model name or directory (default: the spec's, else the embedded model).
        spec: an eval spec YAML file.
        overrides: dotted ``key=value`` overrides, e.g. ``["eval.harmful.limit=20"]``.
        store: a :class:`Store`, a store path/URL, or None for the default store.
        force: re-evaluate even when the store holds this evaluation.

    Raises:
        TamperlabError: bad input (unknown judge, missing model, malformed spec), with one clear message.
    """
    from tamperlab.config import load_spec
    from tamperlab.evals.run_eval import EvalRunSpec, run_eval

    overrides = list(overrides or [])
    if model:
        overrides.append(f"model.name={model}")
    loaded = load_spec(EvalRunSpec, spec, overrides)
    db = _store(store)
    outcome = run_eval(loaded, db, force=force)
    return EvalResult(
        run_id=outcome.run_id,
        model=loaded.model.name,
        reused=outcome.reused,
        seconds=outcome.seconds,
        judge=loaded.eval.judges[0].name,
        metrics=metrics_of(db, outcome.run_id),
    )


def break_costs_of(store: Store, run_id: str) -> tuple[BreakCost, ...]:
    """A stored run's headline: one :class:`BreakCost` per arm, the rows of the terminal's break costs."""
    from tamperlab.report.collect import load_run_view
    from tamperlab.report.formatting import BUDGET_UNITS
    from tamperlab.report.headline import headline_rows

    rows = headline_rows(load_run_view(store, run_id, samples_per_verdict=0))
    return tuple(
        BreakCost(
            arm=row.arm,
            defense=row.defense,
            attack=row.attack,
            broken=row.broken,
            broken_seeds=row.broken_seeds,
            n_seeds=row.n_seeds,
            threshold=row.threshold,
            costs={u: Cost(c.value, c.lower_bound, c.text(u)) for u, c in row.aggregate.items()},
            spread={u: s for u in BUDGET_UNITS if (s := row.spread(u))},
            ratios={u: Ratio(r.value, r.relation, r.baseline_arm, r.text()) for u, r in row.ratios.items()},
            incoherent=row.incoherent,
        )
        for row in rows
    )


def load_run(store: Store | str | Path | None, run_id: str, *, report: str | Path | None = None) -> RunResult:
    """A stored run (id or unique prefix) as a :class:`RunResult`, read from the store alone."""
    db = _store(store)
    record = db.find_run(run_id)
    return RunResult(
        run_id=record["run_id"],
        status=record["status"],
        reused=True,
        seconds=0.0,
        break_costs=break_costs_of(db, record["run_id"]),
        report=str(report) if report is not None else None,
    )


def run(
    spec: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    model: str | None = None,
    store: Store | str | Path | None = None,
    report: str | Path | None = None,
    write_html: bool = True,
) -> RunResult:
    """Safeguard a model, attack it along budget milestones and measure break costs (``tamperlab run``).

    Args:
        spec: a run spec YAML file (default: the built-in defaults).
        overrides: dotted ``key=value`` overrides.
        model: the model to safeguard and attack (overrides ``model.name``).
        store: a :class:`Store`, a store path/URL, or None for the default store.
        report: where to write the HTML report (default: ``reports/RUN_ID.html`` by the store).
        write_html: False to skip the HTML report.

    Returns:
        the run's :class:`RunResult`; finished work in the store is reused, never overwritten.
    """
    from tamperlab.config import RunSpec, load_spec
    from tamperlab.pipeline import Pipeline

    overrides = list(overrides or [])
    if model:
        overrides.append(f"model.name={model}")
    db = _store(store)
    outcome = Pipeline(load_spec(RunSpec, spec, overrides), db).execute()
    path = None
    if write_html:
        from tamperlab.report import default_report_path, write_report

        path = write_report(db, outcome.run_id, report or default_report_path(db, outcome.run_id))
    stored = load_run(db, outcome.run_id, report=path)
    return dataclasses.replace(stored, reused=outcome.reused, seconds=outcome.seconds, status=outcome.status)
