"""Refusal judges, each a registered component behind the :class:`Judge` protocol.

:func:`build_judge` imports :mod:`tamperlab.evals.judges.builtin`, which registers every built-in judge.
"""

from tamperlab.evals.judges.base import JUDGES, Judge, JudgeItem, Verdict, build_judge

__all__ = ["JUDGES", "Judge", "JudgeItem", "Verdict", "build_judge"]
