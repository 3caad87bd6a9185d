"""Imports every built-in judge so it registers: keyword, embedding, hf-classifier, openai-compatible.

Each module imports its heavy dependencies (torch, transformers) only when a judge is built, so importing this
module stays cheap.
"""

from tamperlab.evals.judges import embedding, hf_classifier, keyword, openai_compatible  # noqa: F401
