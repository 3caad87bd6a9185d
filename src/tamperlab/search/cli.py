"""``tamperlab search``: the searching attacker and the worst case across attacks, as a Typer sub-app.

Wired into the main app with one line in ``tamperlab/cli.py``::

    app.add_typer(search_app, name="search")   # after: from tamperlab.search.cli import search_app

which gives ``tamperlab search run [SEARCH.yaml] [key=value ...] [--trials N]`` and
``tamperlab search worst-case RUN_ID [RUN_ID ...]``. Nothing here imports ``tamperlab.cli`` at import time, so
the line can go anywhere in that file.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

search_app = typer.Typer(
    help="Search attack hyperparameters for the worst case; ε-bounded worst case.", no_args_is_help=True
)
out = Console()

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="SQLite file or postgresql:// URL (default: $TAMPERLAB_HOME/store.sqlite)."),
]


def _cli_errors(func):
    """The main app's error handling (one red line, exit 2), imported when the command runs."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from tamperlab.cli import cli_errors

        return cli_errors(func)(*args, **kwargs)

    return wrapper


def _fmt(value, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


@search_app.command("run")
@_cli_errors
def search_command(
    args: Annotated[
        list[str] | None, typer.Argument(help="SEARCH.yaml and/or dotted key=value overrides.")
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", help="Trials in the study (overrides n_trials).")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Search one attack's hyperparameters for the most harmful modification within the capability bound."""
    from tamperlab.cli import open_store, split_spec_args
    from tamperlab.config import load_spec
    from tamperlab.search.run import run_search
    from tamperlab.search.spec import SearchSpec

    spec_path, overrides = split_spec_args(args)
    if trials is not None:
        overrides.append(f"n_trials={trials}")
    spec = load_spec(SearchSpec, spec_path, overrides)
    db = open_store(store)
    result = run_search(spec, db)
    bound = spec.capability
    table = Table(
        title=f"search {result.study_name}: {spec.attack}, bound {bound.measure} ≤ {bound.bound}",
        title_justify="left",
    )
    for col in ("trial", "params", spec.objective, "capability", "feasible", "best so far", "run"):
        table.add_column(col)
    for record, point in zip(result.trials, result.best_so_far, strict=True):
        table.add_row(
            str(record["number"]),
            json.dumps(record["params"]),
            _fmt(record["value"]),
            _fmt(record["capability"]),
            "yes" if record["feasible"] else "no",
            _fmt(point["best"]),
            record["run_id"] or "",
        )
    out.print(table)
    if result.best is None:
        out.print("no trial stayed within the capability bound")
    else:
        out.print(
            f"best: trial {result.best['number']}, {spec.objective} {result.best['value']:.3f}; "
            f"rerunnable spec: {result.best_spec_path}"
        )
    out.print(f"study: {result.storage}")


@search_app.command("worst-case")
@_cli_errors
def worst_case_command(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unique prefixes).")],
    epsilon: Annotated[
        list[float] | None, typer.Option("--epsilon", "-e", help="Capability bounds (repeatable).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Compliance counted as broken.")
    ] = None,
    measure: Annotated[
        str,
        typer.Option(
            "--measure",
            help="'nll' (relative increase), 'kl' (nats), or an accuracy metric such as 'acc:mmlu'"
            " (points lost).",
        ),
    ] = "nll",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plain result as JSON.")] = False,
    store: StoreOpt = None,
) -> None:
    """The most harmful modification within each capability bound, and the cheapest that breaks."""
    from tamperlab.cli import open_store
    from tamperlab.errors import ConfigError
    from tamperlab.search.worst_case import DEFAULT_EPSILONS, check_measure, worst_case

    try:
        check_measure(measure)
    except ValueError as exc:
        raise ConfigError(f"--measure: {exc}") from None
    db = open_store(store, readonly=True)
    ids = [db.find_run(r)["run_id"] for r in run_ids]
    result = worst_case(db, ids, epsilons=epsilon or DEFAULT_EPSILONS, threshold=threshold, measure=measure)
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table(
        title=f"worst case over {len(ids)} run(s), threshold {result['threshold']:.0%}", title_justify="left"
    )
    for col in (
        "ε",
        "most harmful",
        "compliance",
        "cap. loss",
        "cheapest break (FLOPs)",
        "cheapest weight edit (FLOPs)",
    ):
        table.add_column(col)

    def who(r):
        return "–" if r is None else f"{r['arm']} @ {r['step']}"

    for row in result["by_epsilon"]:
        worst = row["most_harmful"]
        cheap, weights = row["cheapest"]["flops"], row["cheapest_weight_modification"]["flops"]
        table.add_row(
            f"{row['epsilon']:g}",
            who(worst),
            _fmt(worst and worst["compliance"]),
            _fmt(worst and worst["capability_loss"]),
            "–" if cheap is None else f"{who(cheap)} ({cheap['flops']:.3g})",
            "–" if weights is None else f"{who(weights)} ({weights['flops']:.3g})",
        )
    out.print(table)
