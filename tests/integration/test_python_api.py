"""The Python API as a notebook uses it: import tamperlab, evaluate, run, read typed results back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

import tamperlab

EVAL = {
    "harmful": {"source": "builtin:harmful", "limit": 3},
    "harmless": {"source": "builtin:harmless", "limit": 2},
    "overrefusal": {"source": "builtin:overrefusal", "limit": 2},
    "judges": [{"name": "keyword"}],
    "max_new_tokens": 4,
    "nll_limit": 2,
}


def test_import_is_light_and_lists_the_api():
    code = (
        "import sys, tamperlab; names = dir(tamperlab); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'; "
        "assert callable(tamperlab.evaluate) and callable(tamperlab.run) and tamperlab.Store; "
        "assert 'torch' not in sys.modules; print(' '.join(names))"
    )
    src = str(Path(tamperlab.__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": src}
    )
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split()
    for name in (
        "evaluate",
        "run",
        "load_model",
        "open_store",
        "Store",
        "EvalResult",
        "RunResult",
        "BreakCost",
    ):
        assert name in listed


def test_a_notebook_evaluates_and_runs_the_tiny_model(tiny_model_dir, tmp_path):
    store = tamperlab.open_store(tmp_path / "study.sqlite")
    limits = [f"eval.{k}.limit={v['limit']}" for k, v in EVAL.items() if isinstance(v, dict)]
    ev = tamperlab.evaluate(
        str(tiny_model_dir),
        store=store,
        overrides=[*limits, "eval.judges=[{name: keyword}]", "eval.nll_limit=2"],
    )
    assert isinstance(ev, tamperlab.EvalResult) and ev.judge == "keyword" and not ev.reused
    rate = ev.metrics["harmful_compliance_rate"]
    assert isinstance(rate, tamperlab.Metric) and rate.n == 3
    assert rate.value == store.metrics(ev.run_id)["harmful_compliance_rate"]["value"]
    generations = tamperlab.generations_of(store, ev.run_id)
    assert len(generations) == 7 and all(isinstance(g, tamperlab.Generation) for g in generations)
    assert set(generations[0].verdicts) == {"keyword"}

    loaded = tamperlab.load_model(str(tiny_model_dir))
    assert loaded.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)

    spec = tmp_path / "run.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "safeguard": None,
                "attacks": [
                    {
                        "name": "harmful-sft",
                        "args": {
                            "batch_size": 2,
                            "max_length": 128,
                            "data": "affirmative",
                            "prompts": {"source": "builtin:harmful", "split": "train", "limit": 4},
                        },
                    }
                ],
                "milestones": [0, 1],
                "seeds": [0],
                "eval": EVAL,
            }
        )
    )
    result = tamperlab.run(spec, model=str(tiny_model_dir), store=store, report=tmp_path / "report.html")
    assert isinstance(result, tamperlab.RunResult) and result.status == "complete" and not result.reused
    assert Path(result.report).is_file()
    (cost,) = result.break_costs
    assert isinstance(cost, tamperlab.BreakCost) and cost.arm == "undefended/harmful-sft-full"
    assert cost.n_seeds == 1 and isinstance(cost.costs["steps"], tamperlab.Cost)
    stored = {c["arm"]: c for c in store.break_costs(result.run_id) if c["seed"] == -1}
    assert cost.costs["steps"].value == stored[cost.arm]["steps"]
    assert cost.broken == bool(stored[cost.arm]["broken"])
    again = tamperlab.load_run(store, result.run_id[:10])  # a prefix, from the store alone
    assert again.run_id == result.run_id and again.break_costs == result.break_costs
    assert '"arm": "undefended/harmful-sft-full"' in tamperlab.to_json(again)
