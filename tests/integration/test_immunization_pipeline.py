"""`tamperlab run` with RepNoise and TAR on the tiny model: both defenses apply, their arms are attacked, and
the run stores the immunization summary; the shipped immunization configs validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from tamperlab.config import RunSpec, load_spec, validate
from tamperlab.pipeline import Pipeline
from tamperlab.store import Store

ROOT = Path(__file__).resolve().parents[2]
TRAIN = {"batch_size": 2, "max_length": 128}
HARMFUL = {"source": "builtin:harmful", "split": "train", "limit": 6}
SAFETY_DATA = {
    "harmful": HARMFUL,
    "harmless": {"source": "builtin:harmless", "split": "train", "limit": 4},
    "overrefusal": {"source": "builtin:overrefusal", "split": "train", "limit": 2},
}


def spec_with_defenses(model_dir) -> RunSpec:
    return validate(
        RunSpec,
        {
            "model": {"name": str(model_dir)},
            "safeguard": {
                "name": "safety-sft",
                "args": {**TRAIN, **SAFETY_DATA, "max_steps": 2, "answer_tokens": 8},
            },
            "defenses": [
                {"name": "repnoise", "args": {**TRAIN, "harmful": HARMFUL, "max_steps": 2, "n_harmless": 4}},
                {
                    "name": "tar",
                    "args": {**TRAIN, "harmful": HARMFUL, "max_steps": 2, "n_examples": 4, "inner_steps": 2},
                },
            ],
            "attacks": [
                {"name": "harmful-sft", "args": {**TRAIN, "mode": "full", "prompts": HARMFUL}},
                {"name": "benign-sft", "args": {**TRAIN, "mode": "full", "n_examples": 4}},
            ],
            "milestones": [0, 1, 2],
            "seeds": [0],
            "eval": {
                "harmful": {"source": "builtin:harmful", "limit": 4},
                "harmless": {"source": "builtin:harmless", "limit": 2},
                "overrefusal": {"source": "builtin:overrefusal", "limit": 2},
                "judges": [{"name": "keyword"}],
                "max_new_tokens": 4,
                "batch_size": 8,
                "nll_limit": 3,
                "kl_limit": 2,
            },
        },
    )


def test_a_run_with_defenses_stores_the_immunization_summary(tiny_model_dir, tmp_path, monkeypatch):
    # The tiny random model only emits newlines, so its real self-completions are all dropped as empty: stand
    # in for them, recording which model they were asked of.
    from tamperlab.attacks import harmful_sft

    asked = []

    def fake_self_completions(ctx, prompts, max_new_tokens):
        asked.append(ctx.unaligned.name)
        return [(p, "Sure, here is an answer.") for p in prompts]

    monkeypatch.setattr(harmful_sft, "self_completions", fake_self_completions)
    store = Store(tmp_path / "s.sqlite")
    outcome = Pipeline(spec_with_defenses(tiny_model_dir), store).execute()
    assert outcome.status == "complete"
    summary = store.summaries(outcome.run_id)["immunization"]
    assert {d["defense"] for d in summary["defenses"]} == {"repnoise", "tar"}
    for entry in summary["defenses"]:
        assert entry["cost"]["flops"] > 0 and entry["cost"]["steps"] == 2
        assert entry["data"]["sources"] and entry["data"]["harmful_data"] == "self-completions"
        assert entry["stability"]["benign_nll"]["undefended"] is not None
        assert entry["stability"]["kl_from_reference"]["defended"] is not None
        kinds = {r["attack"]: (r["kind"], r["data_relation"]) for r in entry["attacks"]}
        assert kinds == {
            "harmful-sft-full": ("harmful", "in-distribution"),
            "benign-sft-full": ("benign", None),
        }
        (trainability,) = entry["trainability"]
        assert trainability["step"] == 2 and trainability["defended_train_loss"] is not None
    # The defenses' harmful data are the *unaligned* model's completions: the root of the safeguarded model's
    # lineage (the attack asks the run's model directly), never the safeguarded model they defend.
    assert len(asked) >= 3 and set(asked) == {str(tiny_model_dir)}


@pytest.mark.parametrize("name", ["immunization_study.yaml", "immunization_quick.yaml"])
def test_the_shipped_immunization_run_specs_validate(name):
    import tamperlab.attacks.builtin  # noqa: F401  (registers the attacks)
    import tamperlab.defenses.builtin  # noqa: F401  (registers the defenses)
    from tamperlab.attacks.base import ATTACKS
    from tamperlab.defenses.base import DEFENSES

    spec = load_spec(RunSpec, ROOT / "configs" / "studies" / name)
    assert {d.name for d in spec.defenses} == {"repnoise", "tar"}
    for ref in spec.defenses:
        DEFENSES.validate_args(ref.name, ref.args)
    for ref in spec.attacks:
        ATTACKS.validate_args(ref.name, ref.args)
    lrs = {(a.args.get("mode"), a.args.get("learning_rate")) for a in spec.attacks if a.name == "harmful-sft"}
    assert len({lr for mode, lr in lrs if mode == "lora"}) >= 2
    quick, study = (
        load_spec(RunSpec, ROOT / "configs" / "studies" / f)
        for f in ("immunization_quick.yaml", "immunization_study.yaml")
    )
    assert quick.defenses == study.defenses  # the two share the cached defended models


def test_the_shipped_cpu_repnoise_spec_validates_and_shares_the_studys_defended_model():
    import tamperlab.attacks.builtin  # noqa: F401  (registers the attacks)
    import tamperlab.defenses.builtin  # noqa: F401  (registers the defenses)
    from tamperlab.attacks.base import ATTACKS
    from tamperlab.defenses.base import DEFENSES

    spec = load_spec(RunSpec, ROOT / "configs" / "studies" / "repnoise_cpu.yaml")
    study = load_spec(RunSpec, ROOT / "configs" / "studies" / "immunization_study.yaml")
    (repnoise,) = spec.defenses
    DEFENSES.validate_args(repnoise.name, repnoise.args)
    assert repnoise == next(d for d in study.defenses if d.name == "repnoise")
    assert {a.args["mode"] for a in spec.attacks} == {"full", "lora"}
    for ref in spec.attacks:
        ATTACKS.validate_args(ref.name, ref.args)


def test_the_shipped_cpu_immunization_spec_sweeps_the_attackers_learning_rate():
    import tamperlab.attacks.builtin  # noqa: F401  (registers the attacks)
    import tamperlab.defenses.builtin  # noqa: F401  (registers the defenses)
    from tamperlab.attacks.base import ATTACKS
    from tamperlab.defenses.base import DEFENSES

    spec = load_spec(RunSpec, ROOT / "configs" / "studies" / "immunization_cpu.yaml")
    repnoise, tar = spec.defenses
    for ref in spec.defenses:
        DEFENSES.validate_args(ref.name, ref.args)
    cpu = load_spec(RunSpec, ROOT / "configs" / "studies" / "repnoise_cpu.yaml").defenses[0]
    assert repnoise.args == cpu.args | {"paired_refusals": True}  # one cached defended model for both
    study = load_spec(RunSpec, ROOT / "configs" / "studies" / "immunization_study.yaml")
    assert tar == next(d for d in study.defenses if d.name == "tar")  # likewise for TAR
    assert len(spec.seeds) == 3
    rates: dict = {}
    for ref in spec.attacks:
        args = ATTACKS.validate_args(ref.name, ref.args)
        if ref.name == "harmful-sft" and args["data"] == "self-completions":
            rates.setdefault(args["mode"], set()).add(args["learning_rate"])
    assert {mode: len(lrs) for mode, lrs in rates.items()} == {"full": 3, "lora": 3}
    assert {ref.name for ref in spec.attacks} == {"harmful-sft", "benign-sft"}


def test_the_longer_lora_spec_extends_the_cpu_studys_arm_with_its_defenses():
    study = load_spec(RunSpec, ROOT / "configs" / "studies" / "immunization_cpu.yaml")
    longer = load_spec(RunSpec, ROOT / "configs" / "studies" / "immunization_cpu_lora16.yaml")
    assert longer.defenses == study.defenses and longer.safeguard == study.safeguard
    assert longer.seeds == study.seeds
    (attack,) = longer.attacks
    assert attack in study.attacks and attack.args["mode"] == "lora"
    assert max(longer.milestones) == 2 * max(study.milestones)


def test_the_shipped_repnoise_grid_expands():
    from tamperlab.sweep.grid import expand, load_grid

    points = expand(load_grid(ROOT / "configs" / "sweeps" / "repnoise_grid.yaml"), check_components=False)
    assert len(points) == 12
    assert {p.spec.defenses[0].name for p in points} == {"repnoise"}
    assert (
        len(
            {
                (
                    p.spec.defenses[0].args["alpha"],
                    p.spec.defenses[0].args["beta"],
                    p.spec.defenses[0].args["learning_rate"],
                )
                for p in points
            }
        )
        == 12
    )
