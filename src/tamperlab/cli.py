"""The tamperlab command line: a thin Typer app over the library.

Every command turns a :class:`TamperlabError` (bad input: unknown judge, missing model, malformed YAML,
unreadable data file) into one red line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tamperlab import paths
from tamperlab.errors import TamperlabError

app = typer.Typer(
    help="Measure how much downstream modification it takes to strip a model's safeguards.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="SQLite store (default: $TAMPERLAB_HOME/store.sqlite).")
]
Overrides = Annotated[list[str] | None, typer.Argument(help="SPEC.yaml and/or dotted key=value overrides.")]


def cli_errors(func):
    """Print TamperlabError as one clear line and exit 2; keep tracebacks for real bugs."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TamperlabError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted:[/yellow] finished results are in the store; rerun to continue")
            raise typer.Exit(130) from None

    return wrapper


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # transformers' own bars and advice would drown ours.
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' weight-loading bars; ours are rich


def split_spec_args(args: list[str] | None) -> tuple[Path | None, list[str]]:
    """The first argument may be a YAML file; the rest are key=value overrides."""
    args = list(args or [])
    spec_path = None
    if args and "=" not in args[0]:
        spec_path = Path(args.pop(0))
    return spec_path, args


def open_store(path: Path | None, readonly: bool = False):
    from tamperlab.store import Store

    return Store(path or paths.default_store_path(), readonly=readonly)


def fmt_rate(m: dict | None) -> tuple[str, str, str]:
    if m is None or m.get("value") is None:
        return "–", "", ""
    ci = f"[{m['ci_low']:.0%}, {m['ci_high']:.0%}]" if m.get("ci_low") is not None else ""
    return f"{m['value']:.1%}", ci, str(m.get("n") or "")


def eval_table(metrics: dict[str, dict], judge: str, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("value", no_wrap=True, justify="right")
    table.add_column("95% CI (Wilson)", no_wrap=True)
    table.add_column("n", justify="right")
    table.add_column("how measured", overflow="fold")
    rows = [
        ("harmful_compliance_rate", f"answered, not refused (judge: {judge})"),
        ("overrefusal_rate", f"safe-looking-unsafe prompts refused (judge: {judge})"),
        ("harmless_refusal_rate", f"plainly harmless prompts refused (judge: {judge})"),
        ("incoherent_rate", "empty, symbol soup or repetition loops"),
    ]
    for name, how in rows:
        table.add_row(name, *fmt_rate(metrics.get(name)), how)
    for name in ("benign_nll", "benign_perplexity", "kl_from_reference"):
        m = metrics.get(name)
        if m:
            table.add_row(
                name,
                f"{m['value']:.3f}",
                "",
                str(m.get("n") or ""),
                "teacher-forced on held-out benign reference answers",
            )
    from tamperlab.report.capability import is_capability_metric

    for name, m in sorted(metrics.items()):
        if is_capability_metric(name):
            continue  # their own table
        if "@" in name:
            table.add_row(name, *fmt_rate(m), "same prompts, other judge")
        elif name.startswith("judge_"):
            table.add_row(name, f"{m['value']:.3f}", "", str(m.get("n") or ""), "all judged items")
    return table


@app.command("eval")
@cli_errors
def eval_command(
    args: Overrides = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Embedded model name, HF model directory or .gguf file."),
    ] = None,
    reference: Annotated[
        str | None, typer.Option("--reference", help="Reference model for KL divergence.")
    ] = None,
    store: StoreOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Re-evaluate even if the store has this evaluation.")
    ] = False,
) -> None:
    """Measure how well a model's safeguards hold as it is (default: the embedded model)."""
    from tamperlab.config import load_spec
    from tamperlab.evals.run_eval import EvalRunSpec, run_eval

    spec_path, overrides = split_spec_args(args)
    if model:
        overrides.append(f"model.name={model}")
    if reference:
        overrides.append(f"eval.reference_model.name={reference}")
    spec = load_spec(EvalRunSpec, spec_path, overrides)
    db = open_store(store)
    outcome = run_eval(spec, db, force=force)
    judge = spec.eval.judges[0].name
    note = " (reused from the store)" if outcome.reused else f" in {outcome.seconds:.0f}s"
    out.print(eval_table(outcome.metrics, judge, f"{spec.model.name} — eval {outcome.run_id}{note}"))
    from tamperlab.report.capability import capability_table

    accuracy = capability_table(
        outcome.metrics, "capability accuracy (lm-eval conventions, 0-shot unless @Nshot)"
    )
    if accuracy is not None:
        out.print(accuracy)
    out.print(f"store: {db.path}  ·  generations and verdicts: tamperlab show {outcome.run_id}")


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    k, sep, n = value.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise typer.BadParameter(f"--shard {value!r}: expected K/N with 0 <= K < N, e.g. 0/4")
    return int(k), int(n)


def _run_and_summarize(
    spec, store: Path | None, report_out: Path | None = None, shard: tuple[int, int] | None = None
) -> None:
    from tamperlab.pipeline import Pipeline

    db = open_store(store)
    outcome = Pipeline(spec, db, shard).execute()
    if shard is not None:
        out.print(
            f"run {outcome.run_id}: shard {shard[0]}/{shard[1]} done in {outcome.seconds / 60:.1f} min;"
            " when every shard is done, run the same command without --shard for break costs, summary"
            " and report"
        )
        return
    note = " (already complete in the store)" if outcome.reused else f" in {outcome.seconds / 60:.1f} min"
    out.print(f"run {outcome.run_id}: {outcome.status}{note}")
    from tamperlab.report import default_report_path, render_terminal_summary, write_report

    render_terminal_summary(db, outcome.run_id, out)
    path = write_report(db, outcome.run_id, report_out or default_report_path(db, outcome.run_id))
    out.print(f"report: {path}")


@app.command("run")
@cli_errors
def run_command(
    args: Overrides = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model to safeguard and attack.")] = None,
    store: StoreOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Where to write the HTML report.")] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="K/N: run only every N-th attack trajectory from K, so N processes can share one store"
            " (e.g. one GPU); then run again without --shard to finish.",
        ),
    ] = None,
) -> None:
    """Safeguard a model, attack it along budget milestones, measure break cost (default: embedded model)."""
    from tamperlab.config import RunSpec, load_spec

    spec_path, overrides = split_spec_args(args)
    if model:
        overrides.append(f"model.name={model}")
    _run_and_summarize(load_spec(RunSpec, spec_path, overrides), store, report, _parse_shard(shard))


@app.command("summarize")
@cli_errors
def summarize_command(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    store: StoreOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Where to write the HTML report.")] = None,
) -> None:
    """Break costs, summary and report of a stored run from what the store holds, training nothing (a run cut
    short); arms not measured at every seed and milestone are left out and listed."""
    from tamperlab.pipeline import summarize_stored
    from tamperlab.report import default_report_path, render_terminal_summary, write_report

    db = open_store(store)
    record = db.find_run(run_id)
    incomplete = summarize_stored(db, record["run_id"])
    out.print(f"run {record['run_id']} (status {record['status']}): summarized from the store")
    if incomplete:
        err.print(
            f"left out, not measured at every seed and milestone ({len(incomplete)}): {', '.join(incomplete)}"
        )
    render_terminal_summary(db, record["run_id"], out)
    path = write_report(db, record["run_id"], report or default_report_path(db, record["run_id"]))
    out.print(f"report: {path}")


@app.command("attack")
@cli_errors
def attack_command(
    args: Overrides = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model to attack (as it is: no safeguard added).")
    ] = None,
    attack: Annotated[str, typer.Option("--attack", "-a", help="Registered attack name.")] = "harmful-sft",
    store: StoreOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Where to write the HTML report.")] = None,
) -> None:
    """Attack one model as it is along budget milestones (overrides: attack args as attack.KEY=VALUE)."""
    from tamperlab.config import RunSpec, apply_overrides, validate

    spec_path, overrides = split_spec_args(args)
    attack_args = {
        o.split("=", 1)[0].removeprefix("attack."): o.split("=", 1)[1]
        for o in overrides
        if o.startswith("attack.")
    }
    rest = [o for o in overrides if not o.startswith("attack.")]
    from tamperlab.config import _parse_value

    data = {
        "safeguard": None,
        "attacks": [{"name": attack, "args": {k: _parse_value(v) for k, v in attack_args.items()}}],
    }
    if model:
        data["model"] = {"name": model}
    if spec_path is not None:
        raise typer.BadParameter(
            "tamperlab attack takes key=value overrides; use tamperlab run SPEC.yaml for spec files"
        )
    _run_and_summarize(validate(RunSpec, apply_overrides(data, rest), "attack"), store, report)


@app.command("defend")
@cli_errors
def defend_command(
    args: Overrides = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model to defend (default: the embedded model).")
    ] = None,
    defense: Annotated[str, typer.Option("--defense", "-d", help="Registered defense name.")] = "safety-sft",
    store: StoreOpt = None,
) -> None:
    """Apply one defense to a model, cache the result, and evaluate it before and after."""
    from tamperlab.config import ComponentRef, ModelSpec, _parse_value
    from tamperlab.defend import defend

    _, overrides = split_spec_args(args)
    defense_args = {o.split("=", 1)[0]: _parse_value(o.split("=", 1)[1]) for o in overrides}
    result = defend(
        ModelSpec(name=model) if model else ModelSpec(),
        ComponentRef(name=defense, args=defense_args),
        open_store(store),
    )
    out.print(eval_table(result.before, "embedding", f"before {defense}: {result.parent}"))
    out.print(eval_table(result.after, "embedding", f"after {defense}: cached as {result.name}"))
    out.print(f"use it: tamperlab eval --model {result.name}   ·   cost: {result.budget}")


@app.command("report")
@cli_errors
def report_command(
    run_id: Annotated[str | None, typer.Argument(help="Run id or unique prefix (default: --latest).")] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="The most recent run (the default without RUN_ID).")
    ] = False,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="HTML file (default: reports/RUN_ID.html by the store).")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Write the self-contained HTML report of a run from the store."""
    from tamperlab.report import default_report_path, render_terminal_summary, resolve_run_id, write_report

    db = open_store(store, readonly=True)
    rid = resolve_run_id(db, None if latest else run_id)
    render_terminal_summary(db, rid, out)
    out.print(f"report: {write_report(db, rid, out_path or default_report_path(db, rid))}")


@app.command("export")
@cli_errors
def export_command(
    run_id: Annotated[
        str | None, typer.Argument(help="Run id or unique prefix (default: the latest run).")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for RUN_milestones.csv / .parquet.")
    ] = Path("."),
    fmt: Annotated[
        list[str] | None, typer.Option("--format", help="csv and/or parquet (default both).")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Export one row per milestone per arm per seed to CSV and Parquet (columns: see tamperlab.report)."""
    from tamperlab.report import export_run, resolve_run_id

    db = open_store(store, readonly=True)
    written = export_run(db, resolve_run_id(db, run_id), out_dir, formats=tuple(fmt or ("csv", "parquet")))
    for path in written.values():
        out.print(f"wrote {path}")


@app.command("scorecard")
@cli_errors
def scorecard_command(
    rubric: Annotated[Path, typer.Argument(help="Rubric YAML (example: tamperlab scorecard --example).")],
    evidence: Annotated[
        Path, typer.Option("--evidence", help="Evidence YAML: one cell per subject and criterion.")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for the static site, scorecard.json and .csv.")
    ],
    store: StoreOpt = None,
    date: Annotated[
        str | None, typer.Option("--date", help="Snapshot date (default: the evidence file's date).")
    ] = None,
) -> None:
    """Build a transparent scorecard site from a rubric, evidence and measured runs in the store."""
    from tamperlab.scorecard import build_scorecard

    result = build_scorecard(rubric, evidence, store, out_dir, date=date)
    table = Table(title=f"scorecard {result.snapshot_id} ({result.date})", title_justify="left")
    table.add_column("subject")
    table.add_column("total (0-100)", justify="right")
    for tied in result.ranking:
        for subject in tied:
            table.add_row(subject, f"{result.totals[subject]:.1f}")
    out.print(table)
    out.print(f"site: {result.out_dir / 'index.html'}")


@app.command("show")
@cli_errors
def show_command(
    eval_id: Annotated[str, typer.Argument(help="Evaluation id (or unique prefix).")],
    prompt_set: Annotated[str | None, typer.Option("--set", help="harmful, harmless or overrefusal.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to show.")] = 10,
    store: StoreOpt = None,
) -> None:
    """Show stored generations with each judge's verdict."""
    db = open_store(store, readonly=True)
    run = db.find_run(eval_id)
    rows = db.generations(run["run_id"], prompt_set)
    table = Table(show_lines=True)
    for col in ("set", "prompt", "completion", "verdicts"):
        table.add_column(col, overflow="fold")
    for row in rows[:limit]:
        verdicts = ", ".join(
            f"{j}: {'refused' if v['refused'] else 'complied'}" for j, v in row["verdicts"].items()
        )
        table.add_row(row["prompt_set"], row["prompt"], row["completion"], verdicts)
    out.print(table)


@app.command("models")
@cli_errors
def models_command() -> None:
    """List the models available: the embedded default and what tamperlab has cached."""
    from tamperlab.config import DEFAULT_MODEL
    from tamperlab.models.loading import default_gguf_path, is_cached, list_cached_models

    table = Table(title=f"models (cache: {paths.models_dir()})", title_justify="left")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "cached", "size", "path"):
        table.add_column(col, overflow="fold")
    try:
        gguf = str(default_gguf_path())
    except TamperlabError as exc:
        gguf = f"missing: {exc}"
    table.add_row(
        DEFAULT_MODEL,
        "embedded (GGUF, dequantized once)",
        "yes" if is_cached(DEFAULT_MODEL) else "no",
        "",
        gguf,
    )
    for m in list_cached_models():
        if m["name"] != DEFAULT_MODEL:
            table.add_row(m["name"], "cached", "yes", f"{m['bytes'] / 1e6:.0f} MB", m["path"])
    out.print(table)


@app.command("data")
@cli_errors
def data_command() -> None:
    """List the built-in prompt sets: sizes per split, categories, versions, licences."""
    from tamperlab.data.sets import describe_builtin_sets

    table = Table(title="built-in prompt sets", title_justify="left")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "version", "train/val/test", "categories", "licence"):
        table.add_column(col, overflow="fold")
    for d in describe_builtin_sets():
        sizes = d.get("sizes", {})
        table.add_row(
            d["name"],
            d["kind"],
            d["version"],
            "/".join(str(sizes.get(s, 0)) for s in ("train", "val", "test")),
            str(len(d.get("categories", {}))),
            d.get("license", ""),
        )
    out.print(table)
    out.print(
        "Standard files load with FORMAT:PATH, e.g. harmful.source=advbench:path/to/advbench.csv "
        "(formats: advbench, harmbench, jailbreakbench, xstest-safe, xstest-unsafe, json, jsonl, csv)."
    )


@app.command("ls")
@cli_errors
def ls_command(
    store: StoreOpt = None, kind: Annotated[str | None, typer.Option(help="eval, run, attack, defend")] = None
) -> None:
    """List runs in the store and their state."""
    db = open_store(store, readonly=True)
    table = Table(title=str(db.path), title_justify="left")
    for col in ("run id", "kind", "status", "created", "wall", "model"):
        table.add_column(col)
    for r in db.list_runs(kind):
        model = (r["spec"] or {}).get("model", {}).get("name", "")
        wall = f"{r['wall_seconds']:.0f}s" if r["wall_seconds"] else ""
        table.add_row(r["run_id"], r["kind"], r["status"], r["created_at"], wall, model)
    out.print(table)


from tamperlab.sweep.command import sweep_command  # noqa: E402  (no torch import)

app.command("sweep")(cli_errors(sweep_command))

from tamperlab.search.cli import search_app  # noqa: E402  (no torch import)

app.add_typer(search_app, name="search")


def run() -> None:  # pragma: no cover - console entry point alias
    app(prog_name="tamperlab")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
