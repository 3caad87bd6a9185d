"""Attacks: downstream modifications that try to strip a safeguard, each a registered component.

Importing :mod:`tamperlab.attacks.builtin` registers them all.
"""

from tamperlab.attacks.base import ATTACKS, Attack, AttackContext, build_attack

__all__ = ["ATTACKS", "Attack", "AttackContext", "build_attack"]
