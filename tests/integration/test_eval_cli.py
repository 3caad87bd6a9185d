"""`tamperlab eval` end to end on the tiny model, and the CLI's one-line errors for bad input."""

import json

import pytest
from typer.testing import CliRunner

from tamperlab.cli import app
from tamperlab.store import Store

runner = CliRunner()
SMALL = [
    "eval.harmful.limit=4",
    "eval.harmless.limit=3",
    "eval.overrefusal.limit=3",
    "eval.max_new_tokens=6",
    "eval.nll_limit=4",
    "eval.kl_limit=2",
]


def test_eval_end_to_end_then_reuse(tiny_model_dir, tmp_path):
    db = tmp_path / "store.sqlite"
    args = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--reference",
        str(tiny_model_dir),
        "--store",
        str(db),
        *SMALL,
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "harmful_compliance_rate" in first.output
    store = Store(db)
    (run,) = store.list_runs("eval")
    assert run["status"] == "complete"
    metrics = store.metrics(run["run_id"])
    for name in (
        "harmful_compliance_rate",
        "overrefusal_rate",
        "harmless_refusal_rate",
        "benign_nll",
        "kl_from_reference",
        "incoherent_rate",
        "judge_kappa:embedding~keyword",
    ):
        assert name in metrics, name
    assert metrics["harmful_compliance_rate"]["n"] == 4
    assert metrics["kl_from_reference"]["value"] == pytest.approx(0.0, abs=1e-6)  # same model as reference
    assert len(store.generations(run["run_id"])) == 10
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "reused" in second.output
    assert len(store.list_runs("eval")) == 1


@pytest.mark.parametrize(
    "args,expected",
    [
        (["eval", "--model", "/nonexistent/model"], "looked at"),
        (["eval", "eval.judges=[{name: keywrd}]"], "did you mean keyword"),
        (["eval", "eval.max_new_tokens=lots"], "eval.max_new_tokens"),
        (["eval", "eval.harmful.source=advbench:/no/such/file.csv"], "/no/such/file.csv"),
    ],
)
def test_bad_input_exits_nonzero_with_one_clear_line(args, expected, tmp_path):
    result = runner.invoke(app, [*args, "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert expected in result.output


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("eval:\n  harmful: [unclosed\n")
    result = runner.invoke(app, ["eval", str(bad)])
    assert result.exit_code == 2 and "bad.yaml" in result.output and "malformed YAML" in result.output


def test_data_and_models_commands_list_what_exists():
    data = runner.invoke(app, ["data"])
    assert data.exit_code == 0 and "harmful" in data.output and "overrefusal" in data.output
    models = runner.invoke(app, ["models"])
    assert models.exit_code == 0 and "smollm2-135m-instruct" in models.output


def test_show_prints_generations_with_verdicts(tiny_model_dir, tmp_path):
    db = tmp_path / "store.sqlite"
    assert (
        runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--store", str(db), *SMALL]).exit_code
        == 0
    )
    run_id = Store(db).list_runs("eval")[0]["run_id"]
    shown = runner.invoke(app, ["show", run_id[:12], "--store", str(db), "--limit", "2"])
    assert shown.exit_code == 0 and "keyword:" in shown.output
    json.dumps(Store(db).get_run(run_id)["provenance"])  # provenance is plain JSON
