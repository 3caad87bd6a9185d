"""The searching attacker (Optuna over attack hyperparameters) and the worst case across attacks.

``run_search`` needs the optional ``search`` extra (optuna), imported only when a search runs;
``worst_case`` is pure Python over the store. Neither imports torch at import time.
"""

from tamperlab.search.run import SearchResult, run_search
from tamperlab.search.spec import CapabilityBound, ParamSpace, SearchSpec, default_space
from tamperlab.search.worst_case import worst_case

__all__ = [
    "CapabilityBound",
    "ParamSpace",
    "SearchResult",
    "SearchSpec",
    "default_space",
    "run_search",
    "worst_case",
]
