"""Imports every built-in defense so it registers."""

from tamperlab.defenses import repnoise, safety_sft, tar  # noqa: F401
