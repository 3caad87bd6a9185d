"""tamperlab: how much downstream modification does it take to strip a model's safeguards?

The Python API (see :mod:`tamperlab.api`), for notebooks and scripts::

    import tamperlab

    store = tamperlab.open_store("study.sqlite")
    ev = tamperlab.evaluate("path/to/model", store=store)     # EvalResult: run_id, metrics (Metric records)
    result = tamperlab.run("spec.yaml", store=store)          # RunResult: break_costs (BreakCost records)
    model = tamperlab.load_model("path/to/model")             # LoadedModel: .model, .tokenizer

Names load on first use, so ``import tamperlab`` imports neither torch nor transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = (
    "BreakCost",
    "Cost",
    "EvalResult",
    "Generation",
    "Metric",
    "Ratio",
    "RunResult",
    "break_costs_of",
    "evaluate",
    "generations_of",
    "load_model",
    "load_run",
    "metrics_of",
    "open_store",
    "run",
    "to_json",
)
__all__ = ["Store", "TamperlabError", "__version__", *_API]

if TYPE_CHECKING:
    from tamperlab.api import (  # noqa: F401
        BreakCost,
        Cost,
        EvalResult,
        Generation,
        Metric,
        Ratio,
        RunResult,
        break_costs_of,
        evaluate,
        generations_of,
        load_model,
        load_run,
        metrics_of,
        open_store,
        run,
        to_json,
    )
    from tamperlab.errors import TamperlabError  # noqa: F401
    from tamperlab.store import Store  # noqa: F401


def __getattr__(name: str) -> Any:
    """Import the API's names lazily (PEP 562)."""
    if name in _API:
        from tamperlab import api

        return getattr(api, name)
    if name == "Store":
        from tamperlab.store import Store

        return Store
    if name == "TamperlabError":
        from tamperlab.errors import TamperlabError

        return TamperlabError
    raise AttributeError(f"module 'tamperlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
