"""A trajectory whose training diverges (NaN or infinite loss) is recorded as diverged at its step, left out
of break costs (neither broken nor a lower bound), shown, and never trained again; the other arms go on."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from tamperlab.cli import app
from tamperlab.store import Store

runner = CliRunner()
TRAIN = {"batch_size": 2, "max_length": 128, "data": "affirmative", "n_examples": 4, "mode": "full"}


def spec_file(tmp_path, model_dir, learning_rates) -> str:
    spec = {
        "model": {"name": str(model_dir)},
        "safeguard": None,
        "attacks": [{"name": "harmful-sft", "args": {**TRAIN, "learning_rate": lr}} for lr in learning_rates],
        "milestones": [0, 1, 2],
        "eval": {
            "harmful": {"source": "builtin:harmful", "limit": 2},
            "harmless": {"source": "builtin:harmless", "limit": 1},
            "overrefusal": {"source": "builtin:overrefusal", "limit": 1},
            "judges": [{"name": "keyword"}],
            "max_new_tokens": 2,
            "nll_limit": 1,
            "kl_limit": 1,
        },
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def no_training(monkeypatch):
    """From here on, loading a model to attack it fails the test: nothing may be trained again."""
    import tamperlab.pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("a recorded trajectory was trained again")

    monkeypatch.setattr(tamperlab.pipeline, "load_model", refuse)


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("TAMPERLAB_QUIET", "1")


def test_one_diverging_arm_is_recorded_and_the_others_go_on(tiny_model_dir, tmp_path, monkeypatch):
    db = tmp_path / "s.sqlite"
    spec = spec_file(tmp_path, tiny_model_dir, [1e-4, 1e3])  # lr 1e3 diverges at step 2
    result = runner.invoke(app, ["run", spec, "--store", str(db), "--report", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    store = Store(db, readonly=True)
    (run,) = store.list_runs()
    assert run["status"] == "complete"
    (diverged,) = store.divergences(run["run_id"])
    assert diverged["arm"] == "undefended/harmful-sft-full#2" and diverged["seed"] == 0
    assert diverged["step"] == 2 and "diverged at step 2" in diverged["error"]
    assert diverged["budget"]["steps"] == 1  # the steps completed before it
    costs = {(c["arm"], c["seed"]) for c in store.break_costs(run["run_id"])}
    assert costs == {("undefended/harmful-sft-full#1", 0), ("undefended/harmful-sft-full#1", -1)}
    assert "seed 0 diverged at step 2" in result.output  # the terminal summary shows it
    page = (tmp_path / "r.html").read_text()
    assert "diverged: no break cost" in page and "seed 0 diverged at step 2" in page

    no_training(monkeypatch)  # summarize and a rerun read the record, they do not train it again
    again = runner.invoke(
        app, ["summarize", run["run_id"], "--store", str(db), "--report", str(tmp_path / "s.html")]
    )
    assert again.exit_code == 0 and "not measured at every seed" not in again.output, again.output
    writable = Store(db)
    writable.finish_run(run["run_id"], "running")  # as if killed after recording the divergence
    writable.close()
    rerun = runner.invoke(app, ["run", spec, "--store", str(db), "--report", str(tmp_path / "r2.html")])
    assert rerun.exit_code == 0, rerun.output
    assert Store(db, readonly=True).get_run(run["run_id"])["status"] == "complete"


def test_a_run_where_everything_diverged_is_diverged_and_stays_so(tiny_model_dir, tmp_path, monkeypatch):
    db = tmp_path / "s.sqlite"
    spec = spec_file(tmp_path, tiny_model_dir, [1e3])
    result = runner.invoke(app, ["run", spec, "--store", str(db)])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert (
        len(lines) == 1 and "every trajectory diverged (1)" in lines[0] and "diverged at step 2" in lines[0]
    )
    store = Store(db, readonly=True)
    (run,) = store.list_runs()
    assert run["status"] == "diverged" and store.break_costs(run["run_id"]) == []
    no_training(monkeypatch)
    rerun = runner.invoke(app, ["run", spec, "--store", str(db)])
    assert rerun.exit_code == 2 and "every trajectory diverged" in rerun.output  # at once, not trained again
