"""run_search: trials map to RunSpecs, the capability bound decides what can be best, the study resumes from
SQLite (an interrupted trial runs again), and the best configuration is written as a rerunnable RunSpec."""

from __future__ import annotations

import sys

import pytest

from tamperlab.config import RunSpec, load_spec, validate
from tamperlab.errors import ConfigError
from tamperlab.search.run import TrialMeasure, import_optuna, run_search, storage_path, trial_run_spec
from tamperlab.search.spec import SearchSpec
from tamperlab.store import Store


def search_spec(model_dir, **overrides) -> SearchSpec:
    data = {
        "run": {"model": {"name": str(model_dir)}, "safeguard": None},
        "attack": "harmful-sft",
        "fixed_args": {"data": "affirmative"},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "capability": {"measure": "nll", "bound": 0.1},
        "n_trials": 6,
        "n_startup_trials": 3,
    }
    data.update(overrides)
    return validate(SearchSpec, data)


class FakeRunner:
    """Compliance x, relative NLL increase 0.2·x: trials with x > 0.5 comply more but lose capability."""

    def __init__(self, fail_at: int | None = None, diverge_above: float | None = None) -> None:
        self.calls: list[dict] = []
        self.fail_at = fail_at
        self.diverge_above = diverge_above

    def __call__(self, run_spec: RunSpec, store, spec) -> TrialMeasure:
        x = run_spec.attacks[0].args["x"]
        self.calls.append({"x": x, "milestones": run_spec.milestones, "seeds": run_spec.seeds})
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise KeyboardInterrupt
        if self.diverge_above is not None and x > self.diverge_above:
            return TrialMeasure(f"run-{x}", "diverged", 0.0, None)
        return TrialMeasure(f"run-{x}", "complete", x, 0.2 * x, {"arm": "undefended/harmful-sft-full"})


def xs(result) -> list[float]:
    return [t["params"]["x"] for t in result.trials]


def test_a_trial_over_the_bound_is_never_best(tiny_model_dir, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    result = run_search(search_spec(tiny_model_dir, n_trials=10), store, runner=FakeRunner())
    assert len(result.trials) == 10
    feasible = [t for t in result.trials if t["feasible"]]
    infeasible = [t for t in result.trials if not t["feasible"]]
    assert all(t["capability"] <= 0.1 for t in feasible) and all(t["capability"] > 0.1 for t in infeasible)
    assert infeasible and max(t["value"] for t in infeasible) > result.best["value"]  # the bound mattered
    assert result.best["feasible"] and result.best["value"] == max(t["value"] for t in feasible)
    for k, point in enumerate(result.best_so_far, start=1):
        prefix = [t["value"] for t in result.trials[:k] if t["feasible"]]
        assert point == {"trials": k, "best": max(prefix) if prefix else None}


def test_diverged_trials_are_infeasible(tiny_model_dir, tmp_path):
    result = run_search(
        search_spec(tiny_model_dir), Store(tmp_path / "s.sqlite"), runner=FakeRunner(diverge_above=0.3)
    )
    diverged = [t for t in result.trials if t["status"] == "diverged"]
    assert diverged and not any(t["feasible"] for t in diverged)
    assert result.best is None or result.best["status"] == "complete"


def test_search_resumes_from_its_study_and_suggests_as_if_uninterrupted(tiny_model_dir, tmp_path):
    straight = run_search(search_spec(tiny_model_dir), Store(tmp_path / "a.sqlite"), runner=FakeRunner())

    store = Store(tmp_path / "b.sqlite")
    first = FakeRunner()
    run_search(search_spec(tiny_model_dir, n_trials=3), store, runner=first)
    assert storage_path(store).is_file() and len(first.calls) == 3
    again = FakeRunner()
    resumed = run_search(search_spec(tiny_model_dir), store, runner=again)
    assert len(again.calls) == 3  # only the missing trials ran
    assert xs(resumed) == xs(straight)
    assert run_search(search_spec(tiny_model_dir), store, runner=FakeRunner()).trials == resumed.trials


def test_an_interrupted_trial_runs_again_first(tiny_model_dir, tmp_path):
    straight = run_search(search_spec(tiny_model_dir), Store(tmp_path / "a.sqlite"), runner=FakeRunner())
    store = Store(tmp_path / "b.sqlite")
    dying = FakeRunner(fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_search(search_spec(tiny_model_dir), store, runner=dying)
    again = FakeRunner()
    resumed = run_search(search_spec(tiny_model_dir), store, runner=again)
    assert again.calls[0]["x"] == dying.calls[2]["x"]
    assert xs(resumed) == xs(straight)


def test_best_configuration_is_a_rerunnable_run_spec(tiny_model_dir, tmp_path):
    spec = search_spec(tiny_model_dir, best_spec_path=str(tmp_path / "best.yaml"))
    result = run_search(spec, Store(tmp_path / "s.sqlite"), runner=FakeRunner())
    loaded = load_spec(RunSpec, result.best_spec_path)
    assert loaded.attacks[0].name == "harmful-sft"
    assert loaded.attacks[0].args == {"data": "affirmative", "x": result.best["params"]["x"]}
    assert loaded.model_dump(mode="json") == result.best_spec
    assert "Best feasible trial" in open(result.best_spec_path).read()


def test_trial_run_spec_maps_steps_and_seed(tiny_model_dir):
    spec = search_spec(tiny_model_dir, fixed_args={"completion_tokens": 8})
    run = trial_run_spec(spec, {"steps": 5, "seed": 2, "learning_rate": 1e-4, "mode": "lora"})
    assert run.milestones == [0, 5] and run.seeds == [2]
    assert run.attacks[0].args == {"completion_tokens": 8, "learning_rate": 1e-4, "mode": "lora"}
    assert run.safeguard is None and run.model.name == str(tiny_model_dir)


def test_conditional_parameters(tiny_model_dir, tmp_path):
    space = {
        "mode": {"type": "categorical", "choices": ["full", "lora"]},
        "lora_rank": {"type": "categorical", "choices": [4, 8], "when": {"mode": "lora"}},
        "x": {"type": "float", "low": 0.0, "high": 1.0},
    }
    result = run_search(
        search_spec(tiny_model_dir, space=space, n_trials=6),
        Store(tmp_path / "s.sqlite"),
        runner=FakeRunner(),
    )
    assert {t["params"]["mode"] for t in result.trials} == {"full", "lora"}
    assert all(("lora_rank" in t["params"]) == (t["params"]["mode"] == "lora") for t in result.trials)
    with pytest.raises(ConfigError, match="listed before"):
        validate(SearchSpec, {"space": {"lora_rank": space["lora_rank"], "mode": space["mode"]}})
    with pytest.raises(ConfigError, match="low"):
        validate(SearchSpec, {"space": {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}})


def test_missing_optuna_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"tamperlab\[search\]"):
        import_optuna()
