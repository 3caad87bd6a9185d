"""Imports every built-in defense so it registers."""

from tamperlab.defenses import safety_sft  # noqa: F401
