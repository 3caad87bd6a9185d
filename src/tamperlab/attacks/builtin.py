"""Imports every built-in attack so it registers."""

from tamperlab.attacks import (  # noqa: F401
    benign_sft,
    harmful_sft,
    identity_shift,
    prompting,
    quantization,
    refusal_ablation,
)
