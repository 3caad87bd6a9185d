"""What a CLI user expects: --version, -q/-v, --json, the component listings, install hints as written,
no other library's warnings, and output that a pipe or a log keeps whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tamperlab
from tamperlab.cli import ATTACK_NAMES, DEFENSE_NAMES, app

runner = CliRunner()
SMALL = [
    "eval.harmful.limit=3",
    "eval.harmless.limit=2",
    "eval.overrefusal.limit=2",
    "eval.max_new_tokens=4",
    "eval.nll_limit=2",
    "eval.judges=[{name: keyword}]",
]


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch):
    """-q sets TAMPERLAB_QUIET and the callback sets library env defaults: undo both after each test."""
    for name in ("TAMPERLAB_QUIET", "COLUMNS", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE"):
        monkeypatch.delenv(name, raising=False)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"tamperlab {tamperlab.__version__}"


def test_help_names_every_registered_attack_and_defense():
    from tamperlab.cli import component_registry

    assert list(ATTACK_NAMES) == component_registry("attacks").names()
    assert list(DEFENSE_NAMES) == component_registry("defenses").names()
    attack_help = runner.invoke(app, ["attack", "--help"], env={"COLUMNS": "200"}).stdout
    defend_help = runner.invoke(app, ["defend", "--help"], env={"COLUMNS": "200"}).stdout
    assert all(name in attack_help for name in ATTACK_NAMES) and "tamperlab ls attacks" in attack_help
    assert all(name in defend_help for name in DEFENSE_NAMES) and "tamperlab ls defenses" in defend_help


@pytest.mark.parametrize("what", ["attacks", "defenses", "judges"])
def test_ls_components_lists_each_ones_args_and_defaults(what):
    from tamperlab.cli import component_registry

    registry = component_registry(what)
    listed = runner.invoke(app, ["ls", what, "--json"])
    assert listed.exit_code == 0, listed.output
    components = {c["name"]: c for c in json.loads(listed.stdout)}
    assert sorted(components) == registry.names()
    human = runner.invoke(app, ["ls", what]).stdout
    for name, component in components.items():
        assert f"{registry.kind} {name}" in human
        for arg in component["args"]:
            assert arg["name"] in human
    defaults = {c["name"]: {a["name"]: a for a in c["args"]} for c in components.values()}
    if what == "attacks":
        assert defaults["harmful-sft"]["mode"]["default"] == "full"
        assert defaults["prefill"]["prefix"]["default"] == "Sure, here is"
    elif what == "defenses":
        assert defaults["safety-sft"]["learning_rate"]["default"] == pytest.approx(4e-5)
        assert defaults["safety-sft"]["max_steps"]["default"] == 60
    else:
        assert defaults["embedding"]["threshold"]["default"] == 0.5
        assert defaults["hf-classifier"]["path"]["required"] is True and "(required)" in human


def test_ls_rejects_an_unknown_listing():
    result = runner.invoke(app, ["ls", "attackz"])
    assert result.exit_code == 2 and "attackz" in result.output and "attacks" in result.output


def test_install_hints_print_as_written(tiny_model_dir, tmp_path, monkeypatch):
    """Rich markup would read [ray] as a style tag and print 'pip install "tamperlab"'."""
    import sweep_support

    grid = sweep_support.write_grid(tmp_path / "grid.yaml", tiny_model_dir)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = runner.invoke(
        app, ["sweep", str(grid), "--store", str(tmp_path / "s.sqlite"), "--executor", "ray"]
    )
    assert result.exit_code == 2, result.output
    assert 'pip install "tamperlab[ray]"' in result.output


def test_eval_json_has_the_tables_figures(tiny_model_dir, tmp_path):
    args = ["eval", "--model", str(tiny_model_dir), "--store", str(tmp_path / "s.sqlite"), *SMALL]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run_id"].startswith("eval-") and data["judge"] == "keyword" and data["reused"] is False
    rate = data["metrics"]["harmful_compliance_rate"]
    assert rate["n"] == 3 and 0.0 <= rate["value"] <= 1.0
    assert rate["ci_low"] - 1e-12 <= rate["value"] <= rate["ci_high"]  # Wilson's low end at k=0 is ~1e-17
    human = runner.invoke(app, args)  # reused from the store: the same figures in the table
    assert human.exit_code == 0 and "reused" in human.stdout and data["run_id"] in human.stdout
    assert f"{rate['value']:.1%}" in human.stdout
    assert f"{data['metrics']['benign_nll']['value']:.3f}" in human.stdout


def test_quiet_and_no_library_noise(tiny_model_dir, tmp_path):
    """The real command in its own process: -q leaves stderr empty (no bars, no transformers FutureWarning);
    plain mode has our bars but no library warnings; -v keeps the bars, and the KV cache is passed under the
    installed transformers' own name, so not even -v shows its deprecation warning."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(Path(tamperlab.__file__).parents[1]),) if p),
        "TAMPERLAB_HOME": str(tmp_path / "home"),
    }
    for name in ("TAMPERLAB_QUIET", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE", "PYTHONWARNINGS"):
        env.pop(name, None)

    def tamperlab_cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "tamperlab", *args, "eval", "--model", str(tiny_model_dir)]
        store = ["--store", str(tmp_path / f"{len(args)}{''.join(args)}.sqlite")]
        return subprocess.run(
            [*command, *store, *SMALL], env=env, capture_output=True, text=True, timeout=300
        )

    quiet = tamperlab_cli("-q")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and "harmful_compliance_rate" in quiet.stdout
    plain = tamperlab_cli()
    assert plain.returncode == 0 and "generating" in plain.stderr
    assert "Warning" not in plain.stderr and "past_key_values" not in plain.stderr
    verbose = tamperlab_cli("-v")
    assert verbose.returncode == 0 and "generating" in verbose.stderr
    assert "past_key_values" not in verbose.stderr


def test_no_library_bars_in_process(tiny_model, tmp_path, capfd):
    """A command run in a process that already imported transformers (a notebook, a test) still turns off
    its tqdm bars, e.g. save_pretrained's "Writing model shards"."""
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    try:
        assert runner.invoke(app, ["ls", "judges"]).exit_code == 0
        assert not hf_logging.is_progress_bar_enabled()
        capfd.readouterr()
        tiny_model.model.save_pretrained(tmp_path / "saved")
        assert "Writing model shards" not in capfd.readouterr().err
    finally:
        hf_logging.enable_progress_bar()


def test_run_and_summarize_json_agree_with_the_table(tiny_model_dir, tmp_path):
    import yaml

    spec = tmp_path / "run.yaml"
    attack_args = {"batch_size": 2, "max_length": 128, "data": "affirmative"}
    attack_args["prompts"] = {"source": "builtin:harmful", "split": "train", "limit": 4}
    spec.write_text(
        yaml.safe_dump(
            {
                "safeguard": None,
                "attacks": [{"name": "harmful-sft", "args": attack_args}],
                "milestones": [0, 1],
                "seeds": [0],
                "eval": {
                    "harmful": {"source": "builtin:harmful", "limit": 3},
                    "harmless": {"source": "builtin:harmless", "limit": 2},
                    "overrefusal": {"source": "builtin:overrefusal", "limit": 2},
                    "judges": [{"name": "keyword"}],
                    "max_new_tokens": 4,
                    "nll_limit": 2,
                },
            }
        )
    )
    store = str(tmp_path / "s.sqlite")
    ran = runner.invoke(app, ["run", str(spec), "--model", str(tiny_model_dir), "--store", store, "--json"])
    assert ran.exit_code == 0, ran.output
    run = json.loads(ran.stdout)
    assert run["status"] == "complete" and Path(run["report"]).is_file()
    (cost,) = run["break_costs"]
    assert cost["arm"] == "undefended/harmful-sft-full" and cost["n_seeds"] == 1
    summarized = runner.invoke(app, ["summarize", run["run_id"][:12], "--store", store, "--json"])
    assert summarized.exit_code == 0, summarized.output
    data = json.loads(summarized.stdout)
    assert data["run"]["run_id"] == run["run_id"] and data["left_out"] == []
    assert data["run"]["break_costs"] == run["break_costs"]
    human = runner.invoke(app, ["summarize", run["run_id"], "--store", store])
    assert human.exit_code == 0, human.output
    for unit, figure in cost["costs"].items():
        assert figure["text"] in human.stdout, unit


def test_models_and_data_json_list_what_the_tables_list():
    models = runner.invoke(app, ["models", "--json"])
    assert models.exit_code == 0, models.output
    listed = json.loads(models.stdout)
    from tamperlab.config import DEFAULT_MODEL

    assert listed[0]["name"] == DEFAULT_MODEL and listed[0]["kind"] == "embedded"
    assert DEFAULT_MODEL in runner.invoke(app, ["models"]).stdout
    data = runner.invoke(app, ["data", "--json"])
    assert data.exit_code == 0, data.output
    sets = {d["name"]: d for d in json.loads(data.stdout)}
    assert {"harmful", "harmless", "overrefusal"} <= set(sets)
    human = runner.invoke(app, ["data"]).stdout
    for d in sets.values():
        sizes = "/".join(str(d["sizes"].get(s, 0)) for s in ("train", "val", "test"))
        line = next(line for line in human.splitlines() if line.startswith(f"│ {d['name']} "))
        assert sizes in line and d["version"] in line
