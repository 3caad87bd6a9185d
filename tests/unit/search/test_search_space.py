"""A search's space: a given space replaces the default one (so it can narrow it), and fixed arguments are
never overridden by sampled values."""

from __future__ import annotations

import pytest
import yaml

from tamperlab.config import load_spec, validate
from tamperlab.errors import ConfigError
from tamperlab.search.run import sample_params, trial_run_spec
from tamperlab.search.spec import SearchSpec, default_space


class FirstChoice:
    """A stand-in Optuna trial: the first choice, the low end."""

    def suggest_categorical(self, name, choices):
        return choices[0]

    def suggest_int(self, name, low, high, log=False):
        return low

    def suggest_float(self, name, low, high, log=False):
        return low


def test_a_given_space_replaces_the_default_one(tmp_path):
    path = tmp_path / "search.yaml"
    space = {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}}
    path.write_text(yaml.safe_dump({"space": space}))
    spec = load_spec(SearchSpec, path)
    assert list(spec.space) == ["learning_rate"]
    assert list(load_spec(SearchSpec, None).space) == list(default_space())  # no space: the default one
    # an override still lands on the resolved space
    narrowed = load_spec(SearchSpec, path, ["space.learning_rate.low=2e-4"])
    assert list(narrowed.space) == ["learning_rate"] and narrowed.space["learning_rate"].low == 2e-4


def test_fixed_args_leave_the_default_space_and_always_win():
    spec = validate(SearchSpec, {"fixed_args": {"mode": "lora", "learning_rate": 5e-4}})
    assert "mode" not in spec.space and "learning_rate" not in spec.space
    params = sample_params(FirstChoice(), spec)
    assert "mode" not in params and params["lora_rank"] == 4  # its condition reads the fixed mode
    args = trial_run_spec(spec, params).attacks[0].args
    assert args["mode"] == "lora" and args["learning_rate"] == 5e-4


def test_a_fixed_argument_in_a_given_space_is_an_error():
    with pytest.raises(ConfigError, match="mode is both in fixed_args and in space"):
        validate(
            SearchSpec,
            {"fixed_args": {"mode": "full"}, "space": {"mode": {"type": "categorical", "choices": ["lora"]}}},
        )
