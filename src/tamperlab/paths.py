"""Where tamperlab keeps its caches and its default store.

``TAMPERLAB_HOME`` overrides everything; otherwise caches go under ``$XDG_CACHE_HOME/tamperlab`` (default
``~/.cache/tamperlab``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def home() -> Path:
    """The root directory for tamperlab's caches and default store."""
    override = os.environ.get("TAMPERLAB_HOME")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tamperlab"


def models_dir() -> Path:
    """Cached model weights (dequantized default model, safeguarded models)."""
    return home() / "models"


def default_store_path() -> Path:
    """The SQLite store used when ``--store`` is not given."""
    return home() / "store.sqlite"


SHARED_DATA_ENV = "TAMPERLAB_SHARED_DATA"
"""The folder holding your copies of the standard benchmark files (``harmful/advbench.csv``,
``harmful/jailbreakbench.json``, ``xstest/xstest_prompts.csv``, ...): the shipped configs name them as
``$TAMPERLAB_SHARED_DATA/...``, since tamperlab ships none of them."""

_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def expand_data_path(path: str | Path) -> Path:
    """A data file's path with ``~`` and environment variables (``$NAME`` or ``${NAME}``) expanded.

    Raises:
        DataError: the path names an environment variable that is not set and no such file exists, saying
            which variable to set.
    """
    from tamperlab.errors import DataError

    text = str(path)
    expanded = Path(os.path.expandvars(text)).expanduser()
    unset = [name for name in _VARIABLE.findall(str(expanded)) if name not in os.environ]
    if unset and not expanded.exists():
        name = unset[0]
        what = (
            "the folder that holds your copies of the standard data files"
            if name == SHARED_DATA_ENV
            else "the folder this path starts from"
        )
        raise DataError(f"{text}: environment variable {name} is not set: set {name} to {what}")
    return expanded
