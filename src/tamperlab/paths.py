"""Where tamperlab keeps its caches and its default store.

``TAMPERLAB_HOME`` overrides everything; otherwise caches go under ``$XDG_CACHE_HOME/tamperlab`` (default
``~/.cache/tamperlab``).
"""

from __future__ import annotations

import os
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
