"""PostgreSQL backend: the store's SQLite dialect, spoken to a PostgreSQL database that a team shares.

The :class:`~tamperlab.store.Store` is written against ``sqlite3``. Rather than a second store, this module
gives it a connection that accepts the same statements and returns rows that behave like ``sqlite3.Row``:

- ``?`` placeholders become ``%s``; ``PRAGMA`` statements are no-ops;
- ``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING`` and ``INSERT OR REPLACE`` becomes ``ON CONFLICT
  (primary key) DO UPDATE`` (primary keys are read from ``schema.sql``, so the schema is the same file for
  both);
- ``BEGIN IMMEDIATE`` becomes ``BEGIN`` plus a transaction-scoped advisory lock, which serializes writers
  exactly as SQLite does (the store's read-then-write transactions, e.g. ``start_run``, rely on that);
- ``REAL``/``INTEGER`` columns become ``DOUBLE PRECISION``/``BIGINT`` (PostgreSQL's ``REAL`` is 4 bytes);
- psycopg errors are raised as the matching ``sqlite3`` exception (chained to the original), so the store's
  error handling and its tests apply unchanged.

Requires the ``postgres`` extra (``pip install "psycopg[binary]"``). psycopg is imported only here.
"""

from __future__ import annotations

import re
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tamperlab.errors import StoreError

URL_PREFIXES = ("postgresql://", "postgres://")

# Advisory lock keys. Writers take the single-bigint lock; sweep claims use the (classid, objid) space, which
# PostgreSQL keeps separate from the bigint space.
WRITER_LOCK = 0x7A3B_1AB0_5EED_0001 & 0x7FFF_FFFF_FFFF_FFFF
CLAIM_CLASS = 0x7A3B


def is_postgres_url(target: object) -> bool:
    """True when ``target`` is a ``postgresql://`` (or ``postgres://``) URL rather than a file path."""
    return isinstance(target, str) and target.startswith(URL_PREFIXES)


def redact(url: str) -> str:
    """The URL without its password, for messages and ``Store.path``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def reject_folded_url(text: str) -> None:
    """Raise StoreError when ``text`` is a PostgreSQL URL that went through ``Path()``, which folds ``//`` to
    ``/`` (``postgresql:/user:pw@host/db``): opened as a file it would become a stray local SQLite store."""
    for prefix in URL_PREFIXES:
        if text.startswith(prefix[:-1]) and not text.startswith(prefix):
            url = prefix + text[len(prefix) - 1 :]
            raise StoreError(
                f"store {redact(url)}: a PostgreSQL URL was read as a file path; pass the URL as it is"
            )


# -- the schema, read from schema.sql ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def schema_tables() -> dict[str, tuple[list[str], list[str]]]:
    """{table: (columns in order, primary-key columns)} parsed from the store's ``schema.sql``."""
    text = resources.files("tamperlab.store").joinpath("schema.sql").read_text()
    text = re.sub(r"--[^\n]*", "", text)
    tables: dict[str, tuple[list[str], list[str]]] = {}
    for match in re.finditer(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*?)\);", text, re.S):
        name, body = match.group(1), match.group(2)
        columns, pk = [], []
        for line in (part.strip().rstrip(",").strip() for part in body.splitlines()):
            if not line:
                continue
            key = re.match(r"PRIMARY KEY\s*\(([^)]*)\)", line)
            if key:
                pk = [c.strip() for c in key.group(1).split(",")]
                continue
            column = line.split()[0]
            columns.append(column)
            if "PRIMARY KEY" in line:
                pk.append(column)
        tables[name] = (columns, pk)
    return tables


# -- statement translation -----------------------------------------------------------------------------------

_INSERT = re.compile(
    r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)\s*(\(([^)]*)\))?\s*(VALUES\b.*)$", re.I | re.S
)


def _placeholders(sql: str) -> str:
    """``?`` → ``%s`` and ``%`` → ``%%`` outside single-quoted literals."""
    out = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
            out.append(ch)
        elif quoted:
            out.append("%%" if ch == "%" else ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=512)
def translate(sql: str) -> tuple[str, ...]:
    """The PostgreSQL statements for one store statement (empty for a no-op)."""
    text = re.sub(
        r"--[^\n]*", "", sql
    ).strip()  # schema.sql's comments (the store writes no '--' in literals)
    upper = text.upper()
    if upper.startswith("PRAGMA"):
        return ()
    if upper == "BEGIN IMMEDIATE":
        return ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")
    if re.fullmatch(r"SELECT NAME FROM SQLITE_MASTER WHERE TYPE\s*=\s*'TABLE'", upper):
        return (
            "SELECT table_name AS name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
    if upper.startswith("CREATE TABLE"):
        text = re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)
        text = re.sub(r"\bINTEGER\b", "BIGINT", text)
        return (_placeholders(text),)
    insert = _INSERT.match(text)
    if insert:
        mode, table, _, column_list, values = insert.groups()
        if table not in schema_tables():
            raise sqlite3.OperationalError(f"no such table: {table}")
        all_columns, pk = schema_tables()[table]
        columns = [c.strip() for c in column_list.split(",")] if column_list else all_columns
        head = f"INSERT INTO {table} ({', '.join(columns)}) {values}"
        if mode.upper() == "IGNORE" or not (set(columns) - set(pk)):
            return (_placeholders(f"{head} ON CONFLICT DO NOTHING"),)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in pk)
        return (_placeholders(f"{head} ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {updates}"),)
    return (_placeholders(text),)


# -- rows, cursors, connection -------------------------------------------------------------------------------


class Row(tuple):
    """A result row that indexes by position or by column name and converts with ``dict(row)``, like
    sqlite3.Row."""

    _index: dict[str, int]

    def __new__(cls, values: Iterable[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    names = [c.name for c in cursor.description] if cursor.description else []
    index = {name: i for i, name in enumerate(names)}
    return lambda values: Row(values, index)


class _NoRows:
    """What a no-op statement (PRAGMA) returns."""

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


def _as_sqlite_error(exc: Exception) -> sqlite3.Error:
    import psycopg

    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.IntegrityError):
        return sqlite3.IntegrityError(message)
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.InFailedSqlTransaction):
        return sqlite3.OperationalError(message)
    if isinstance(exc, psycopg.ProgrammingError):
        return sqlite3.OperationalError(message)
    if isinstance(exc, psycopg.DatabaseError):
        return sqlite3.DatabaseError(message)
    return sqlite3.Error(message)


class PostgresConnection:
    """A psycopg connection that accepts the store's sqlite3-dialect statements (see the module docstring)."""

    def __init__(self, url: str, readonly: bool = False, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                'a PostgreSQL store needs psycopg: pip install "tamperlab[postgres]" (or "psycopg[binary]")'
            ) from None
        self.url = url
        try:
            self.raw = psycopg.connect(
                url, autocommit=True, row_factory=_row_factory, connect_timeout=max(1, int(connect_timeout))
            )
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot connect to PostgreSQL at {redact(url)}: {first}") from None
        if readonly:
            self.raw.execute("SET default_transaction_read_only = on")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        import psycopg

        statements = translate(sql)
        if not statements:
            return _NoRows()
        try:
            cursor = None
            for statement in statements:
                cursor = self.raw.execute(statement, tuple(params) if "%s" in statement else None)
            return cursor
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc

    def executemany(self, sql: str, seq_of_params: Iterable[Sequence[Any]]) -> None:
        import psycopg

        rows = [tuple(p) for p in seq_of_params]
        if not rows:
            return
        (statement,) = translate(sql)
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(statement, rows)
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc

    def try_advisory_lock(self, key: str) -> bool:
        """Take the session-level claim lock for ``key`` without waiting; held until released or
        disconnected."""
        row = self.raw.execute("SELECT pg_try_advisory_lock(%s, %s)", (CLAIM_CLASS, _int32(key))).fetchone()
        return bool(row[0])

    def advisory_unlock(self, key: str) -> None:
        self.raw.execute("SELECT pg_advisory_unlock(%s, %s)", (CLAIM_CLASS, _int32(key)))

    def close(self) -> None:
        self.raw.close()


def _int32(key: str) -> int:
    value = zlib.crc32(key.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def attach(store: Any, url: str, readonly: bool = False) -> None:
    """Initialize a ``Store`` instance on a PostgreSQL URL (creating the schema when the database is empty).

    Raises:
        StoreError: psycopg missing, the server unreachable, or the database holds something else.
    """
    store.path = redact(url)
    store.conn = PostgresConnection(url, readonly=readonly)
    try:
        store._check_or_create(readonly)
    except sqlite3.DatabaseError as exc:
        store.conn.close()
        raise StoreError(f"{store.path} is not a usable tamperlab store ({exc})") from None
    except StoreError:
        store.conn.close()
        raise


def open_store(url: str, readonly: bool = False) -> Any:
    """A :class:`~tamperlab.store.Store` on a PostgreSQL database (for callers that cannot rely on the
    ``Store(url)`` dispatch)."""
    from tamperlab.store.store import Store

    store = Store.__new__(Store)
    attach(store, url, readonly)
    return store
