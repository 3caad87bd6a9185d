"""The one way every command opens its store: a file path, a ``postgresql://`` URL, or the default file.

A PostgreSQL URL must reach :class:`~tamperlab.store.Store` as the string it was given: ``Path()`` folds its
``//`` into ``/`` and turns it into a local file name (``postgresql:/user:pw@host/db``), which would create a
stray SQLite file, or fail as "no tamperlab store" with the password in the message.
"""

from __future__ import annotations

from pathlib import Path

from tamperlab import paths
from tamperlab.store.postgres import is_postgres_url, reject_folded_url
from tamperlab.store.store import Store


def store_target(target: str | Path | None) -> str:
    """The store's location as a string: a PostgreSQL URL as given, a file path expanded and made absolute,
    the default store when ``target`` is None or empty.

    Raises:
        StoreError: ``target`` is a PostgreSQL URL that has been through ``Path()`` (its ``//`` folded).
    """
    if target is None or str(target) == "":
        return str(paths.default_store_path())
    text = str(target)
    if is_postgres_url(text):
        return text
    reject_folded_url(text)
    return str(Path(text).expanduser().resolve())


def open_store(target: str | Path | None = None, readonly: bool = False) -> Store:
    """Open the store at ``target`` (see :func:`store_target`).

    Args:
        target: a SQLite file, a ``postgresql://`` URL, or None for ``$TAMPERLAB_HOME/store.sqlite``.
        readonly: open without creating or migrating; a missing store is then a StoreError.

    Raises:
        StoreError: no store there (read-only), not a tamperlab store, or the server unreachable; the message
            never holds a password.
    """
    text = store_target(target)
    if is_postgres_url(text):
        from tamperlab.store.postgres import open_store as open_postgres

        return open_postgres(text, readonly=readonly)
    return Store(text, readonly=readonly)
