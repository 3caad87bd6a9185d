"""Bad input to the CLI: one line naming the thing, exit code 2, and the store left as it was."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tamperlab.cli import app
from tamperlab.store import Store

runner = CliRunner()


def seeded_store(path: Path) -> Path:
    """A store holding one finished run, so "unchanged" has something to compare."""
    store = Store(path)
    store.start_run("run0000000000000", "eval", {"model": {"name": "m"}})
    store.finish_run("run0000000000000", "complete", wall_seconds=1.0)
    store.close()
    return path


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with the sha256 of its bytes; a database by its content (what a reader
    sees, its write-ahead log included), since a command may leave an empty ``-wal`` beside it."""
    out = {}
    for p in sorted(directory.rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm")):
            continue
        if p.suffix == ".sqlite":
            conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
            content = "\n".join(conn.iterdump()).encode()
            conn.close()
        else:
            content = p.read_bytes()
        out[str(p.relative_to(directory))] = hashlib.sha256(content).hexdigest()
    return out


def assert_one_line_error(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "eval.judges.0.name=keyword"],
        ["run", "eval.judges.0.name=keyword"],
        ["eval", "eval.judges=[]"],
    ],
)
def test_duplicate_or_missing_judge_is_rejected_at_load_time(args, tiny_model_dir, tmp_path):
    db = seeded_store(tmp_path / "store" / "s.sqlite")
    before = fingerprint(db.parent)
    result = runner.invoke(app, [*args, "--model", str(tiny_model_dir), "--store", str(db)])
    assert_one_line_error(result, "eval.judges")
    assert fingerprint(db.parent) == before


def _support():
    import sweep_support

    return sweep_support


def test_store_factory_keeps_a_url_a_url_and_never_prints_its_password(tmp_path, monkeypatch):
    from tamperlab.errors import StoreError
    from tamperlab.store import open_store, store_target

    monkeypatch.chdir(tmp_path)
    assert store_target(None).endswith("store.sqlite")
    assert store_target("postgresql://u:secret@h/db") == "postgresql://u:secret@h/db"
    for folded in (Path("postgresql://u:secret@127.0.0.1/db"), "postgres:/u:secret@127.0.0.1/db"):
        with pytest.raises(
            StoreError, match=r"u:\*\*\*@127.0.0.1/db: a PostgreSQL URL was read as a file"
        ) as exc:
            open_store(folded)
        assert "secret" not in str(exc.value)
        with pytest.raises(StoreError, match="read as a file path"):
            Store(folded)
    assert list(tmp_path.iterdir()) == []  # no stray 'postgresql:' file


@pytest.mark.parametrize(
    "command",
    [
        ["ls"],
        ["show", "abc"],
        ["report", "abc"],
        ["export", "abc"],
        ["summarize", "abc"],
        ["eval"],
        ["run"],
    ],
)
def test_an_unreachable_postgres_store_is_one_line_without_the_password(command, tmp_path, monkeypatch):
    support = _support()
    monkeypatch.chdir(tmp_path)
    url = f"postgresql://u:secret@127.0.0.1:{support.free_port()}/db"
    result = runner.invoke(app, [*command, "--store", url])
    line = assert_one_line_error(result, "cannot connect to PostgreSQL at postgresql://u:***@127.0.0.1")
    assert "secret" not in result.output and "no tamperlab store" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def postgres_url():
    server, url = _support().postgres_or_skip()
    yield url
    server.__exit__(None, None, None)


@pytest.mark.postgres
def test_every_command_reads_and_writes_a_postgres_store(postgres_url, tiny_model_dir, tmp_path, monkeypatch):
    import yaml

    support = _support()
    monkeypatch.chdir(tmp_path)
    url = support.new_database(postgres_url, "cli").replace("postgres@", "postgres:secret@")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(support.tiny_base(tiny_model_dir)))
    outputs = []

    def ok(*args: str) -> str:
        result = runner.invoke(app, [*args, "--store", url])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
        return result.output

    ok("run", str(spec), "--report", str(tmp_path / "run.html"))
    ok(
        "eval",
        "--model",
        str(tiny_model_dir),
        "eval.judges=[{name: keyword}]",
        "eval.harmful.limit=2",
        "eval.harmless.limit=1",
        "eval.overrefusal.limit=1",
        "eval.max_new_tokens=2",
        "eval.nll_limit=1",
        "eval.kl_limit=1",
    )
    from tamperlab.store import open_store

    store = open_store(url, readonly=True)
    runs = {r["kind"]: r["run_id"] for r in store.list_runs()}
    store.close()
    assert set(runs) == {"run", "eval"}
    assert "postgresql://postgres:***@127.0.0.1" in ok("ls")  # the table is cut to the terminal's width
    assert "keyword" in ok("show", runs["eval"])
    ok("summarize", runs["run"], "--report", str(tmp_path / "again.html"))
    ok("report", runs["run"], "--out", str(tmp_path / "report.html"))
    ok("export", runs["run"], "--out", str(tmp_path / "export"), "--format", "csv")
    assert (tmp_path / "report.html").is_file() and list((tmp_path / "export").glob("*.csv"))
    assert not any(p.name.startswith("postgres") for p in tmp_path.rglob("*"))  # no stray local store
    assert not any("secret" in text for text in outputs)


def test_summarize_a_run_without_attack_arms_is_one_line(tmp_path):
    from tamperlab.config import RunSpec

    db = seeded_store(tmp_path / "store" / "s.sqlite")
    store = Store(db)
    store.start_run("run-noarms", "run", RunSpec().model_dump(mode="json"))
    store.close()
    before = fingerprint(db.parent)
    result = runner.invoke(app, ["summarize", "run-noarms", "--store", str(db)])
    assert_one_line_error(result, "run-noarms has no attack arms", "nothing to summarize")
    assert fingerprint(db.parent) == before
    assert not (db.parent / "reports").exists()


TINY_EVAL = [
    "eval.judges=[{name: keyword}]",
    "eval.harmful.limit=2",
    "eval.harmless.limit=1",
    "eval.overrefusal.limit=1",
    "eval.max_new_tokens=2",
    "eval.nll_limit=1",
    "eval.kl_limit=1",
]


def test_training_on_no_assistant_token_is_an_error_not_a_lower_bound(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TAMPERLAB_QUIET", "1")  # no progress lines: the error is the whole output
    db = tmp_path / "s.sqlite"
    args = ["attack", "--model", str(tiny_model_dir), "--store", str(db), "milestones=[0,1,2]"]
    attack = ["attack.mode=full", "attack.data=affirmative", "attack.n_examples=4", "attack.batch_size=2"]
    result = runner.invoke(app, [*args, *attack, "attack.max_length=48", *TINY_EVAL])
    assert_one_line_error(result, "max_length=48", "none of the 4 training examples")
    store = Store(db, readonly=True)
    (run,) = store.list_runs()
    assert run["status"] == "failed" and "max_length=48" in run["error"]
    assert store.break_costs(run["run_id"]) == []  # no "not broken within" bound from training nothing
    assert [m["step"] for m in store.milestones(run["run_id"])] == []


def test_attack_overrides_land_on_the_run_defaults(monkeypatch, tmp_path):
    import tamperlab.cli
    from tamperlab.config import RunSpec

    seen = []
    monkeypatch.setattr(tamperlab.cli, "_run_and_summarize", lambda spec, *a, **k: seen.append(spec))
    result = runner.invoke(
        app, ["attack", "eval.harmful.limit=4", "attack.mode=lora", "--store", str(tmp_path / "s.sqlite")]
    )
    assert result.exit_code == 0, result.output
    (spec,) = seen
    defaults = RunSpec().eval
    assert spec.eval.harmful.source == "builtin:harmful" and spec.eval.harmful.limit == 4
    # every other eval default of a run stays (not EvalSpec's own defaults of 50 prompts, 64 tokens)
    assert spec.eval.model_copy(update={"harmful": defaults.harmful}) == defaults
    assert spec.safeguard is None and [(a.name, a.args) for a in spec.attacks] == [
        ("harmful-sft", {"mode": "lora"})
    ]
    assert spec.milestones == RunSpec().milestones
