"""Refusal judges, each a registered component behind the :class:`Judge` protocol.

:data:`JUDGES` imports :mod:`tamperlab.evals.judges.builtin` (every built-in judge) on its first lookup.
"""

from tamperlab.evals.judges.base import JUDGES, Judge, JudgeItem, Verdict, build_judge

__all__ = ["JUDGES", "Judge", "JudgeItem", "Verdict", "build_judge"]
