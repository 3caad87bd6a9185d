"""Every registered attack, defense and judge validates its args model, describes itself, and (where its
defaults allow and building is cheap) builds from its defaults."""

from __future__ import annotations

import pytest

from tamperlab.attacks.base import ATTACKS, Attack
from tamperlab.defenses.base import DEFENSES, Defense
from tamperlab.errors import ConfigError
from tamperlab.evals.judges.base import JUDGES

REGISTRIES = {"attack": ATTACKS, "defense": DEFENSES, "judge": JUDGES}
NOT_BUILT = {
    ("judge", "embedding"): "loads its sentence encoder (torch) when built",
}
ALL = [(kind, name) for kind, reg in REGISTRIES.items() for name in reg.names()]


def test_the_builtins_are_registered():
    assert {"harmful-sft", "benign-sft", "prefill", "template", "quantize", "refusal-ablation"} <= set(
        ATTACKS.names()
    )
    assert {"safety-sft", "repnoise", "tar"} <= set(DEFENSES.names())
    assert {"keyword", "embedding", "hf-classifier", "openai-compatible"} <= set(JUDGES.names())


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_every_component_validates_describes_and_builds(kind, name):
    reg = REGISTRIES[kind]
    described = reg.describe(name)
    assert described["name"] == name
    for arg in described["args"]:
        assert set(arg) == {"name", "type", "default", "required", "description"}
    required = [a["name"] for a in described["args"] if a["required"]]
    try:
        valid = reg.validate_args(name, None)
    except ConfigError as exc:  # a component without usable defaults says which arg it needs
        assert str(exc).startswith(f"{kind} {name!r}: args.")
        return
    assert not required
    assert reg.validate_args(name, valid) == valid  # the stored args rebuild the same component
    if (kind, name) in NOT_BUILT:
        return
    built = reg.build(name, valid)
    if kind == "attack":
        assert Attack in type(built).__mro__ and built.label
        assert isinstance(built.full_trajectory, bool) and isinstance(built.one_shot, bool)
        assert dict(built.eval_overrides) is not None
    elif kind == "defense":
        assert Defense in type(built).__mro__ and built.label
        assert built.version is None or isinstance(built.version, str)
    else:
        assert built.name and isinstance(built.version, str)
