"""Defenses: upstream modifications meant to make a safeguard hold, each a registered component.

Safety alignment (``safety-sft``) is one: it gives the default model the safeguard the attacks then try to
strip. The registry imports
:mod:`tamperlab.defenses.builtin` on its first lookup.
"""

from tamperlab.defenses.base import DEFENSES, Defense, DefenseOutcome, build_defense

__all__ = ["DEFENSES", "Defense", "DefenseOutcome", "build_defense"]
