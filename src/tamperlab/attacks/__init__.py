"""Attacks: downstream modifications that try to strip a safeguard, each a registered component.

The registry imports :mod:`tamperlab.attacks.builtin` on its first lookup.
"""

from tamperlab.attacks.base import ATTACKS, Attack, AttackContext, build_attack

__all__ = ["ATTACKS", "Attack", "AttackContext", "build_attack"]
