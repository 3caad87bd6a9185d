"""The KV cache under the name the installed transformers gives it.

transformers 5.2x calls a forward pass's cache ``cache`` and keeps ``past_key_values`` as a deprecated alias
(warning on every call, to be removed in 5.40); earlier releases, 5.17 among them, know only
``past_key_values``. Every cached forward pass (generation, log-likelihood scoring, the training loop's shared
prefix) passes and reads the cache through these two functions, so it runs on both without warnings.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


def cache_arg(module: Any, cache: Any) -> dict[str, Any]:
    """The keyword argument that hands ``cache`` to ``module``'s forward pass."""
    return {_name_for(type(_unwrapped(module))): cache}


def cache_of(output: Any) -> Any:
    """The KV cache a forward pass returned (None if it returned none)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def _unwrapped(module: Any) -> Any:
    """A PEFT wrapper forwards ``**kwargs``; its base model's signature names the cache."""
    return module.get_base_model() if hasattr(module, "get_base_model") else module


@functools.cache
def _name_for(cls: type) -> str:
    try:
        parameters = inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in parameters else "past_key_values"
