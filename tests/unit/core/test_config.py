"""Specs: field-path errors, overrides on defaults, deterministic ids, and every shipped run YAML
validates."""

from pathlib import Path

import pytest

from tamperlab.config import EvalSpec, RunSpec, load_spec, spec_id
from tamperlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_override_keeps_sibling_defaults():
    spec = load_spec(RunSpec, None, ["eval.harmful.limit=100", "safeguard.args.max_steps=5"])
    assert spec.eval.harmful.limit == 100 and spec.eval.harmful.source == "builtin:harmful"
    assert spec.safeguard.name == "safety-sft" and spec.safeguard.args == {"max_steps": 5}


def test_a_number_indexes_a_list():
    override = ["defenses.0.args.paired_refusals=true"]
    spec = load_spec(RunSpec, ROOT / "configs" / "studies" / "repnoise_cpu.yaml", override)
    assert spec.defenses[0].args["paired_refusals"] is True and spec.defenses[0].args["max_steps"] == 40
    spec = load_spec(RunSpec, None, ["attacks.1.args.learning_rate=1e-3"])
    assert spec.attacks[1].args == {"mode": "lora", "learning_rate": 1e-3}
    for bad in ("attacks.2.args.mode=full", "attacks.x.args.mode=full", "seeds.0.x=1"):
        with pytest.raises(ConfigError, match=r"override"):
            load_spec(RunSpec, None, [bad])


def test_values_are_parsed_as_yaml():
    spec = load_spec(RunSpec, None, ["seeds=[0,1,2]", "milestones=[0,2,4]", "keep_checkpoints=true"])
    assert spec.seeds == [0, 1, 2] and spec.milestones == [0, 2, 4] and spec.keep_checkpoints is True


@pytest.mark.parametrize(
    "overrides,path",
    [
        (["eval.max_new_tokens=-1"], "eval.max_new_tokens"),
        (["milestones=[4,2]"], "milestones"),
        (["eval.harmful.split=training"], "eval.harmful.split"),
        (["eval.typo=1"], "eval.typo"),
        (["noequals"], "key=value"),
    ],
)
def test_bad_fields_name_their_path(overrides, path):
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        load_spec(RunSpec, None, overrides)


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: [oops\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: malformed YAML at line"):
        load_spec(RunSpec, bad)
    with pytest.raises(ConfigError, match="not found"):
        load_spec(RunSpec, tmp_path / "missing.yaml")


def test_spec_id_is_deterministic_and_sensitive():
    assert spec_id(EvalSpec()) == spec_id(EvalSpec())
    assert spec_id(EvalSpec()) != spec_id(EvalSpec(max_new_tokens=65))
    assert spec_id(load_spec(RunSpec, None, ["seeds=[0]"])) == spec_id(RunSpec())


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "runs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_run_spec_validates(path):
    load_spec(RunSpec, path)


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "evals").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_eval_spec_validates(path):
    from tamperlab.evals.run_eval import EvalRunSpec

    load_spec(EvalRunSpec, path)


def test_default_yaml_is_the_default_run():
    assert load_spec(RunSpec, ROOT / "configs" / "runs" / "default.yaml") == RunSpec()


def test_capability_tasks_and_the_accuracy_bound_are_checked_at_load_time():
    from tamperlab.config import EvalSpec, RunSpec, load_spec

    spec = load_spec(
        RunSpec,
        overrides=[
            "eval.capability=[{task: mmlu, shots: 5, per_subject: 2}, {task: arc_easy, limit: 50}]",
            "break_cost.accuracy.metric=acc:mmlu@5shot",
            "break_cost.capability_tolerance=null",
        ],
    )
    assert [t.label for t in spec.eval.capability] == ["mmlu@5shot", "arc_easy"]
    assert spec.break_cost.accuracy.floor(0.5) == pytest.approx(0.45)
    assert spec.break_cost.capability_tolerance is None
    with pytest.raises(ConfigError, match="listed twice"):
        load_spec(EvalSpec, overrides=["capability=[{task: piqa}, {task: piqa}]"])
    with pytest.raises(ConfigError, match="capability.0.task"):
        load_spec(EvalSpec, overrides=["capability=[{task: mmlu-pro}]"])
    with pytest.raises(ConfigError, match="KIND:TASK"):
        load_spec(RunSpec, overrides=["break_cost.accuracy.metric=accuracy:mmlu"])
    with pytest.raises(ConfigError, match="needs task 'mmlu' in eval.capability"):
        load_spec(
            RunSpec, overrides=["eval.capability=[{task: piqa}]", "break_cost.accuracy.metric=acc:mmlu"]
        )
