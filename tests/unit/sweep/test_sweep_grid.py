"""Grid expansion: product and zip groups, named override axes, validation errors, deterministic unique
ids."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tamperlab.config import RunSpec, validate
from tamperlab.errors import ConfigError
from tamperlab.sweep.grid import check_path, expand, load_grid, parse_grid, set_path

BASE = {
    "model": {"name": "some-model"},
    "safeguard": None,
    "attacks": [{"name": "harmful-sft", "args": {"mode": "full", "data": "affirmative"}}],
    "milestones": [0, 1, 2],
    "eval": {"judges": [{"name": "keyword"}], "max_new_tokens": 4},
}


def grid(axes, base=None, **extra):
    return parse_grid({"base": base or BASE, "axes": axes, **extra})


def test_product_multiplies_axes_in_declaration_order():
    points = expand(grid({"attacks.0.args.learning_rate": [1e-4, 3e-4], "seeds": [[0], [1], [2]]}))
    assert len(points) == 6
    assert [(p.spec.attacks[0].args["learning_rate"], p.spec.seeds) for p in points[:3]] == [
        (1e-4, [0]),
        (1e-4, [1]),
        (1e-4, [2]),
    ]


def test_zip_pairs_values_and_groups_multiply():
    points = expand(
        grid(
            [
                {"zip": {"seeds": [[0], [1]], "eval.max_new_tokens": [8, 16]}},
                {"product": {"milestones": [[0, 1], [0, 2]]}},
            ]
        )
    )
    assert len(points) == 4
    assert {(tuple(p.spec.seeds), p.spec.eval.max_new_tokens) for p in points} == {((0,), 8), ((1,), 16)}


def test_named_axis_applies_several_overrides_together():
    points = expand(
        grid(
            {
                "attack": [
                    {"attacks.0.args.mode": "full"},
                    {"attacks.0.args.mode": "lora", "attacks.0.args.learning_rate": 1e-3},
                ]
            }
        )
    )
    assert [
        (p.spec.attacks[0].args["mode"], p.spec.attacks[0].args.get("learning_rate")) for p in points
    ] == [("full", None), ("lora", 1e-3)]
    assert points[1].label == "attack[attacks.0.args.mode=lora attacks.0.args.learning_rate=0.001]"


def test_paths_apply_to_the_resolved_base_so_other_defaults_stay():
    (point,) = expand(grid({"eval.max_new_tokens": [7]}, base={"model": {"name": "m"}, "safeguard": None}))
    default = RunSpec().eval
    assert point.spec.eval.max_new_tokens == 7
    assert point.spec.eval.harmful == default.harmful  # the run's small default limits, not EvalSpec's 50


def test_no_axes_is_one_run_of_the_base():
    (point,) = expand(grid({}))
    assert point.spec == validate(RunSpec, BASE)


def test_equal_specs_are_one_run():
    points = expand(grid({"eval.max_new_tokens": [4, 4, 8]}))
    assert [p.spec.eval.max_new_tokens for p in points] == [4, 8]


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"evl.max_new_tokens": [1]}, "unknown axis 'evl.max_new_tokens'.*did you mean eval"),
        ({"eval.max_new_tokns": [1]}, "'max_new_tokns' is not a field of eval.*did you mean max_new_tokens"),
        ({"attacks.first.args.mode": ["full"]}, "is a list, index it with a number"),
        ({"seeds": []}, "axis 'seeds' is empty"),
        ({"seeds": 3}, "axis 'seeds': values must be a list"),
        ({"attacks.3.args.mode": ["full"]}, "attacks has only 1 entries"),
        ({"milestones": [[2, 1]]}, "milestones"),
        ({"attacks.0.args.mode": ["sideways"]}, "attacks.0: attack 'harmful-sft': args.mode"),
        ({"attacks.0.name": ["no-such-attack"]}, "unknown attack 'no-such-attack'"),
        ([{"zip": {"seeds": [[0], [1]], "eval.max_new_tokens": [1]}}], "equal lengths"),
        ([{"cartesian": {"seeds": [[0]]}}], "'product' or 'zip'"),
        ({"eval": [{"max_new_tokens": 2}], "eval.max_new_tokens": [3]}, "both set"),
    ],
)
def test_bad_axes_fail_with_the_path(axes, message):
    with pytest.raises(ConfigError, match=message):
        expand(grid(axes))


def test_unknown_top_level_grid_field_is_an_error():
    with pytest.raises(ConfigError, match="axis"):
        parse_grid({"base": BASE, "axis": {"seeds": [[1]]}})


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("base:\n  model: {name: x\naxes: {}\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_grid(path)


def test_base_may_be_a_runspec_file_beside_the_grid(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"base": "base.yaml", "axes": {"seeds": [[0], [1]]}}))
    assert len(expand(load_grid(tmp_path / "g.yaml"))) == 2


def test_check_path_and_set_path():
    check_path("attacks.0.args.anything_goes")  # component args are free-form; the component validates them
    with pytest.raises(ConfigError, match="is a value"):
        check_path("seeds.0.x")
    data = {"a": [{"b": 1}]}
    set_path(data, "a.0.c.d", 2)
    assert data == {"a": [{"b": 1, "c": {"d": 2}}]}


# -- ids: property-based -------------------------------------------------------------------------------------

AXIS_VALUES = {
    "seeds": st.lists(st.integers(0, 5), min_size=1, max_size=2, unique=True).map(sorted),
    "eval.max_new_tokens": st.integers(1, 64),
    "attacks.0.args.learning_rate": st.sampled_from([1e-5, 1e-4, 3e-4, 1e-3]),
    "attacks.0.args.mode": st.sampled_from(["full", "lora"]),
    "break_cost.threshold": st.sampled_from([0.25, 0.5, 0.75]),
    "keep_checkpoints": st.booleans(),
}

axes_strategy = st.dictionaries(
    st.sampled_from(sorted(AXIS_VALUES)), st.just(None), min_size=1, max_size=4
).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.lists(AXIS_VALUES[k], min_size=1, max_size=3) for k in keys})
)


def shuffled(value, rng):
    """The same data with every mapping's keys in a random order (lists keep their order)."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(axes=axes_strategy, order_seed=st.integers(0, 2**16))
def test_ids_are_stable_under_key_order(axes, order_seed):
    rng = random.Random(order_seed)
    first = expand(grid(axes))
    again = expand(parse_grid(shuffled({"base": BASE, "axes": axes}, rng)))

    def by_point(points):  # the same axis values -> the same id, whatever order the keys were written in
        return {json.dumps(p.overrides, sort_keys=True): p.spec_key for p in points}

    assert by_point(first) == by_point(again)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(axes=axes_strategy)
def test_ids_are_unique_across_distinct_specs(axes):
    points = expand(grid(axes))
    canonical = [json.dumps(p.spec.model_dump(mode="json"), sort_keys=True) for p in points]
    assert len(set(canonical)) == len(points)  # duplicates were merged
    assert len({p.spec_key for p in points}) == len(points)
    # and the id is a function of the spec alone: rebuilding the spec from its dump gives the same id
    for p in points:
        assert expand(grid({}, base=p.spec.model_dump(mode="json")))[0].spec_key == p.spec_key


def test_run_ids_are_the_pipelines_and_unique(tiny_model_dir):
    from tamperlab.pipeline import run_id_for
    from tamperlab.sweep.grid import assign_run_ids

    base = dict(BASE, model={"name": str(tiny_model_dir)})
    points = assign_run_ids(
        expand(grid({"seeds": [[0], [1]], "attacks.0.args.mode": ["full", "lora"]}, base=base))
    )
    assert [p.run_id for p in points] == [run_id_for(p.spec) for p in points]
    assert len({p.run_id for p in points}) == 4
    again = assign_run_ids(
        expand(grid({"attacks.0.args.mode": ["full", "lora"], "seeds": [[0], [1]]}, base=base))
    )
    assert {p.run_id for p in again} == {p.run_id for p in points}
