"""Refusal judges, each a registered component behind the :class:`Judge` protocol.

Importing this package registers every built-in judge.
"""

from tamperlab.evals.judges.base import JUDGES, Judge, JudgeItem, Verdict, build_judge

__all__ = ["JUDGES", "Judge", "JudgeItem", "Verdict", "build_judge"]
