"""Imports every built-in attack so it registers."""

from tamperlab.attacks import harmful_sft  # noqa: F401
