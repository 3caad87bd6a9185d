"""The tamperlab command line: a thin Typer app over the library.

Every command turns a :class:`TamperlabError` (bad input: unknown judge, missing model, malformed YAML,
unreadable data file) into one red line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

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
    str | None,
    typer.Option("--store", help="SQLite file or postgresql:// URL (default: $TAMPERLAB_HOME/store.sqlite)."),
]
Overrides = Annotated[list[str] | None, typer.Argument(help="SPEC.yaml and/or dotted key=value overrides.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout (tables and notes are left out).")
]

PIPE_WIDTH = 1000
"""Console width when stdout is not a terminal (a pipe or a log file): tables print whole, never cut at 80."""

# The built-in component names, for --help without importing every component at start-up; a test checks
# them against the registries.
ATTACK_NAMES = (
    "benign-sft",
    "harmful-sft",
    "identity-shift",
    "prefill",
    "quantize",
    "refusal-ablation",
    "template",
)
DEFENSE_NAMES = ("repnoise", "safety-sft", "tar")


def cli_errors(func):
    """Print TamperlabError as one clear line and exit 2; keep tracebacks for real bugs."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TamperlabError as exc:
            # Text, not markup: an install hint's "tamperlab[ray]" must print as written.
            err.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted:[/yellow] finished results are in the store; rerun to continue")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        from tamperlab import __version__

        typer.echo(f"tamperlab {__version__}")
        raise typer.Exit()


def quiet_third_parties() -> None:
    """Silence other libraries' advice on every command: transformers' and torch's FutureWarnings and
    DeprecationWarnings, their log lines below ERROR and their tqdm bars ("Writing model shards")."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' weight-loading bars; ours are rich
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch|transformers|peft)(\.|$)")
    if "transformers" in sys.modules:  # imported before the command ran (a notebook, a test)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def fit_consoles() -> None:
    """Wide output when stdout is not a terminal (unless $COLUMNS says otherwise), so a log keeps whole
    tables."""
    from tamperlab.search import cli as search_cli
    from tamperlab.sweep import command as sweep_cli

    columns = os.environ.get("COLUMNS", "")
    for console in (out, err, search_cli.out, sweep_cli.out, sweep_cli.err):
        if columns.isdigit():
            console.width = int(columns)
        else:  # None: the terminal's own width
            console.width = None if console.is_terminal else PIPE_WIDTH  # type: ignore[assignment]


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress details, and other libraries' warnings.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only results and errors: no progress bars or notes.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet together")
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tamperlab").setLevel(level)
    if quiet:
        os.environ["TAMPERLAB_QUIET"] = "1"
    if not verbose:
        quiet_third_parties()
    fit_consoles()


def print_json(value) -> None:
    """One JSON document on stdout: a record from :mod:`tamperlab.api`, or plain data."""
    from tamperlab.api import to_json

    typer.echo(to_json(value))


def split_spec_args(args: list[str] | None) -> tuple[Path | None, list[str]]:
    """The first argument may be a YAML file; the rest are key=value overrides."""
    args = list(args or [])
    spec_path = None
    if args and "=" not in args[0]:
        spec_path = Path(args.pop(0))
    return spec_path, args


def open_store(target: str | Path | None, readonly: bool = False):
    """The store every command uses: a file, a ``postgresql://`` URL, or the default file."""
    from tamperlab.store import open_store as open_any

    return open_any(target, readonly=readonly)


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
    as_json: JsonOpt = False,
) -> None:
    """Measure how well a model's safeguards hold as it is (default: the embedded model)."""
    from dataclasses import asdict

    from tamperlab.api import evaluate

    spec_path, overrides = split_spec_args(args)
    if reference:
        overrides.append(f"eval.reference_model.name={reference}")
    db = open_store(store)
    result = evaluate(model, spec=spec_path, overrides=overrides, store=db, force=force)
    if as_json:
        print_json(result)
        return
    metrics = {name: asdict(m) for name, m in result.metrics.items()}
    note = " (reused from the store)" if result.reused else f" in {result.seconds:.0f}s"
    out.print(eval_table(metrics, result.judge, f"{result.model} — eval {result.run_id}{note}"))
    from tamperlab.report.capability import capability_table

    accuracy = capability_table(metrics, "capability accuracy (lm-eval conventions, 0-shot unless @Nshot)")
    if accuracy is not None:
        out.print(accuracy)
    out.print(f"store: {db.path}  ·  generations and verdicts: tamperlab show {result.run_id}")


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    k, sep, n = value.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise typer.BadParameter(f"--shard {value!r}: expected K/N with 0 <= K < N, e.g. 0/4")
    return int(k), int(n)


def _run_and_summarize(
    spec,
    store: str | None,
    report_out: Path | None = None,
    shard: tuple[int, int] | None = None,
    as_json: bool = False,
) -> None:
    from tamperlab.pipeline import Pipeline

    db = open_store(store)
    outcome = Pipeline(spec, db, shard).execute()
    if shard is not None and as_json:
        print_json({"run_id": outcome.run_id, "shard": list(shard), "seconds": outcome.seconds})
        return
    if shard is not None:
        out.print(
            f"run {outcome.run_id}: shard {shard[0]}/{shard[1]} done in {outcome.seconds / 60:.1f} min;"
            " when every shard is done, run the same command without --shard for break costs, summary"
            " and report"
        )
        return
    from tamperlab.report import default_report_path, render_terminal_summary, write_report

    path = write_report(db, outcome.run_id, report_out or default_report_path(db, outcome.run_id))
    if as_json:
        from dataclasses import replace

        from tamperlab.api import load_run

        stored = load_run(db, outcome.run_id, report=path)
        print_json(replace(stored, reused=outcome.reused, seconds=outcome.seconds, status=outcome.status))
        return
    note = " (already complete in the store)" if outcome.reused else f" in {outcome.seconds / 60:.1f} min"
    out.print(f"run {outcome.run_id}: {outcome.status}{note}")
    render_terminal_summary(db, outcome.run_id, out)
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
    as_json: JsonOpt = False,
) -> None:
    """Safeguard a model, attack it along budget milestones, measure break cost (default: embedded model)."""
    from tamperlab.config import RunSpec, load_spec

    spec_path, overrides = split_spec_args(args)
    if model:
        overrides.append(f"model.name={model}")
    _run_and_summarize(
        load_spec(RunSpec, spec_path, overrides), store, report, _parse_shard(shard), as_json=as_json
    )


@app.command("summarize")
@cli_errors
def summarize_command(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    store: StoreOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Where to write the HTML report.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Break costs, summary and report of a stored run from what the store holds, training nothing (a run cut
    short); arms not measured at every seed and milestone are left out and listed."""
    from tamperlab.pipeline import summarize_stored
    from tamperlab.report import default_report_path, render_terminal_summary, write_report

    db = open_store(store)
    record = db.find_run(run_id)
    incomplete = summarize_stored(db, record["run_id"])
    if as_json:
        from tamperlab.api import load_run

        path = write_report(db, record["run_id"], report or default_report_path(db, record["run_id"]))
        print_json({"run": load_run(db, record["run_id"], report=path), "left_out": list(incomplete or [])})
        return
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
    attack: Annotated[
        str,
        typer.Option(
            "--attack", "-a", help=f"Attack: {', '.join(ATTACK_NAMES)} (args: tamperlab ls attacks)."
        ),
    ] = "harmful-sft",
    store: StoreOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Where to write the HTML report.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Attack one model as it is along budget milestones (overrides: attack args as attack.KEY=VALUE)."""
    from tamperlab.config import RunSpec, resolve_spec

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
    _run_and_summarize(resolve_spec(RunSpec, data, rest, "attack"), store, report, as_json=as_json)


@app.command("defend")
@cli_errors
def defend_command(
    args: Overrides = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model to defend (default: the embedded model).")
    ] = None,
    defense: Annotated[
        str,
        typer.Option(
            "--defense", "-d", help=f"Defense: {', '.join(DEFENSE_NAMES)} (args: tamperlab ls defenses)."
        ),
    ] = "safety-sft",
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
    as_json: JsonOpt = False,
) -> None:
    """Write the self-contained HTML report of a run from the store."""
    from tamperlab.report import default_report_path, render_terminal_summary, resolve_run_id, write_report

    db = open_store(store, readonly=True)
    rid = resolve_run_id(db, None if latest else run_id)
    if as_json:
        from tamperlab.api import load_run

        print_json(load_run(db, rid, report=write_report(db, rid, out_path or default_report_path(db, rid))))
        return
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
    eval_id: Annotated[str, typer.Argument(help="Evaluation id (an eval run's id may be a unique prefix).")],
    prompt_set: Annotated[str | None, typer.Option("--set", help="harmful, harmless or overrefusal.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to show.")] = 10,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show stored generations with each judge's verdict."""
    from tamperlab.api import generations_of

    db = open_store(store, readonly=True)
    # A milestone's evaluation (the export's eval_id column) by its full id; an eval run by id or prefix.
    found = eval_id if db.get_evaluation(eval_id) is not None else db.find_run(eval_id)["run_id"]
    rows = generations_of(db, found, prompt_set)[:limit]
    if as_json:
        print_json(rows)
        return
    table = Table(show_lines=True)
    for col in ("set", "prompt", "completion", "verdicts"):
        table.add_column(col, overflow="fold")
    for row in rows:
        verdicts = ", ".join(
            f"{j}: {'refused' if refused else 'complied'}" for j, refused in row.verdicts.items()
        )
        # Text, not str: a model's completion is not rich markup.
        table.add_row(Text(row.prompt_set), Text(row.prompt), Text(row.completion), Text(verdicts))
    out.print(table)


@app.command("models")
@cli_errors
def models_command(as_json: JsonOpt = False) -> None:
    """List the models available: the embedded ones and what tamperlab has cached."""
    from tamperlab.models.embedded import EMBEDDED_MODELS, where
    from tamperlab.models.loading import is_cached, list_cached_models

    embedded = []
    for model in EMBEDDED_MODELS.values():
        try:
            path, missing = where(model), None
        except TamperlabError as exc:
            path, missing = None, str(exc)
        embedded.append((model, path, missing))
    if as_json:
        listing = [
            {"name": m.name, "kind": "embedded", "cached": is_cached(m.name), "bytes": None, "path": path}
            for m, path, _ in embedded
        ]
        listing += [
            {"name": m["name"], "kind": "cached", "cached": True, "bytes": m["bytes"], "path": str(m["path"])}
            for m in list_cached_models()
            if m["name"] not in EMBEDDED_MODELS
        ]
        print_json(listing)
        return
    table = Table(title=f"models (cache: {paths.models_dir()})", title_justify="left")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "cached", "size", "path"):
        table.add_column(col, overflow="fold")
    for model, path, missing in embedded:
        table.add_row(
            model.name,
            f"embedded: {model.description} (dequantized once)",
            "yes" if is_cached(model.name) else "no",
            "",
            path if path is not None else f"missing: {missing}",
        )
    for m in list_cached_models():
        if m["name"] not in EMBEDDED_MODELS:
            table.add_row(m["name"], "cached", "yes", f"{m['bytes'] / 1e6:.0f} MB", m["path"])
    out.print(table)


@app.command("data")
@cli_errors
def data_command(as_json: JsonOpt = False) -> None:
    """List the built-in prompt sets: sizes per split, categories, versions, licences."""
    from tamperlab.data.sets import describe_builtin_sets

    if as_json:
        print_json(describe_builtin_sets())
        return
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
    what: Annotated[
        str, typer.Argument(help="runs (the store's runs), attacks, defenses or judges (with their args).")
    ] = "runs",
    store: StoreOpt = None,
    kind: Annotated[str | None, typer.Option(help="runs only: eval, run, attack, defend")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the store's runs and their state, or the registered attacks, defenses or judges with each one's
    arguments and defaults."""
    if what != "runs":
        _ls_components(what, as_json)
        return
    db = open_store(store, readonly=True)
    runs = [
        {
            "run_id": r["run_id"],
            "kind": r["kind"],
            "status": r["state"],  # "interrupted" for a run recorded running that nobody runs any more
            "created_at": r["created_at"],
            "wall_seconds": r["wall_seconds"],
            "model": (r["spec"] or {}).get("model", {}).get("name", ""),
        }
        for r in db.list_runs(kind)
    ]
    if as_json:
        print_json(runs)
        return
    table = Table(title=Text(str(db.path)), title_justify="left")
    for col in ("run id", "kind", "status", "created", "wall", "model"):
        table.add_column(col)
    for r in runs:
        wall = f"{r['wall_seconds']:.0f}s" if r["wall_seconds"] else ""
        table.add_row(
            *(Text(str(v)) for v in (r["run_id"], r["kind"], r["status"], r["created_at"], wall)),
            Text(r["model"]),
        )
    out.print(table)


COMPONENT_KINDS = ("attacks", "defenses", "judges")
COMPONENT_USE = {
    "attacks": "tamperlab attack -a NAME attack.KEY=VALUE, or in a run spec"
    " attacks: [{name: NAME, args: {KEY: VALUE}}]",
    "defenses": "tamperlab defend -d NAME KEY=VALUE, or in a run spec"
    " safeguard: {name: NAME, args: {KEY: VALUE}}",
    "judges": "in a spec eval.judges: [{name: NAME, args: {KEY: VALUE}}] (the first is the primary judge)",
}


def component_registry(what: str):
    """The registry ``tamperlab ls WHAT`` lists (it loads its built-ins and plugins on first lookup)."""
    if what == "attacks":
        from tamperlab.attacks import ATTACKS

        return ATTACKS
    if what == "defenses":
        from tamperlab.defenses.base import DEFENSES

        return DEFENSES
    if what == "judges":
        from tamperlab.evals.judges.base import JUDGES

        return JUDGES
    raise typer.BadParameter(f"{what!r}: expected runs, {', '.join(COMPONENT_KINDS)}", param_hint="WHAT")


def _ls_components(what: str, as_json: bool) -> None:
    registry = component_registry(what)
    listing = [{"name": name, "args": registry.arguments(name)} for name in registry.names()]
    if as_json:
        print_json(listing)
        return
    for component in listing:
        table = Table(
            title=Text(f"{registry.kind} {component['name']}"), title_justify="left", show_header=True
        )
        table.add_column("arg", no_wrap=True)
        table.add_column("type")
        table.add_column("default")
        table.add_column("meaning", overflow="fold")
        for arg in component["args"]:
            default = "(required)" if arg["required"] else json.dumps(arg["default"], default=str)
            table.add_row(Text(arg["name"]), Text(arg["type"]), Text(default), Text(arg["description"]))
        if not component["args"]:
            table.add_row(Text("(no arguments)"), Text(""), Text(""), Text(""))
        out.print(table)
    out.print(Text(f"use one: {COMPONENT_USE[what]}"), highlight=False, soft_wrap=True)


from tamperlab.sweep.command import sweep_command  # noqa: E402  (no torch import)

app.command("sweep")(cli_errors(sweep_command))

from tamperlab.search.cli import search_app  # noqa: E402  (no torch import)

app.add_typer(search_app, name="search")


def run() -> None:  # pragma: no cover - console entry point alias
    app(prog_name="tamperlab")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
