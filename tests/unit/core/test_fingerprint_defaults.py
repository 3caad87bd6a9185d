"""Fields that now default to None (= inspect the model) hash as their former fixed default, so run ids of
existing specs do not change; the stored args keep None, so a rebuilt component inspects again."""

from __future__ import annotations

import tamperlab.attacks.builtin  # noqa: F401  (registers the built-in attacks)
from tamperlab.attacks.base import ATTACKS
from tamperlab.attacks.refusal_ablation import WRITERS
from tamperlab.train.loop import DEFAULT_LORA_TARGETS


def test_inspected_lora_targets_hash_as_the_former_default():
    valid = ATTACKS.validate_args("harmful-sft", {"mode": "lora"})
    assert valid["lora_targets"] is None
    keyed = ATTACKS.fingerprint_args("harmful-sft", valid)
    explicit = {"mode": "lora", "lora_targets": list(DEFAULT_LORA_TARGETS)}
    explicit = ATTACKS.validate_args("harmful-sft", explicit)
    assert keyed == explicit
    other = ATTACKS.validate_args("harmful-sft", {"mode": "lora", "lora_targets": ["c_attn"]})
    assert ATTACKS.fingerprint_args("harmful-sft", other) == other


def test_inspected_writers_hash_as_the_former_default():
    valid = ATTACKS.validate_args("refusal-ablation", {})
    assert valid["writers"] is None
    assert ATTACKS.fingerprint_args("refusal-ablation", valid)["writers"] == list(WRITERS)
