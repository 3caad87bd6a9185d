"""The real embedded default model (slow: dequantizes once, ~20 s, then generates on CPU)."""

import pytest
from typer.testing import CliRunner

from tamperlab.cli import app
from tamperlab.models import load_model
from tamperlab.store import Store

pytestmark = pytest.mark.slow


def test_default_model_loads_from_the_package_and_caches_as_safetensors(isolated_home):
    first = load_model()
    assert first.num_parameters == 134_515_008 and first.dtype == "float32"
    assert (isolated_home / "models" / "smollm2-135m-instruct" / "model.safetensors").is_file()
    assert load_model().source == first.source  # second load reads the cache


def test_eval_runs_on_the_default_model(tmp_path):
    db = tmp_path / "s.sqlite"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--store",
            str(db),
            "eval.harmful.limit=6",
            "eval.harmless.limit=4",
            "eval.overrefusal.limit=4",
            "eval.max_new_tokens=24",
            "eval.nll_limit=6",
        ],
    )
    assert result.exit_code == 0, result.output
    (run,) = Store(db).list_runs("eval")
    metrics = Store(db).metrics(run["run_id"])
    # the unaligned default model answers most harmful requests (measured: 90% compliance, n=40, make run)
    assert metrics["harmful_compliance_rate"]["value"] >= 0.5
    assert 1.0 < metrics["benign_nll"]["value"] < 4.0
