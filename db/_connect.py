"""Connecting through ADBC, and turning the drivers' errors into one line each.

``DatabaseUnavailable`` (exit 74: try again later) where the database could not be
reached or used: refused connection, unknown host, refused login, lost connection,
server shutting down, disk full, a lock that stayed busy. ``DataError`` (exit 2: fix the
command or the database) for the rest: a missing database, table or column, a bad
query, a denied permission. Messages name the target without its password, and any
password text the driver echoes is masked.

The ADBC drivers are imported here only, when a connection is opened: ``movierec.db``
imports without them (``pip install "movierec[db]"`` brings them).
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from typing import Any

from movierec.db._uri import POSTGRESQL, SQLITE, DatabaseURI
from movierec.serve_batch.errors import DatabaseUnavailable, DataError, UsageError

INSTALL_HINT = 'pip install "movierec[db]"'
#: How long a SQLite connection waits for another's write lock before "database is locked".
SQLITE_BUSY_MS = 10_000
_DRIVERS = {POSTGRESQL: "adbc_driver_postgresql.dbapi", SQLITE: "adbc_driver_sqlite.dbapi"}

#: SQLSTATE classes of a database that cannot be used right now (not the data's fault):
#: 08 connection, 28 login refused, 40 transaction rolled back (deadlock, serialization),
#: 53 out of resources (disk full), 55P03 lock not available, 57 operator intervention
#: (shutdown, cancel, timeout), 58 system error (I/O).
_UNAVAILABLE_SQLSTATES = ("08", "28", "40", "53", "55P03", "57", "58")
#: Driver messages that mean the same where the driver gives no SQLSTATE (SQLite, and
#: libpq failing to connect).
_UNAVAILABLE_TEXT = re.compile(
    r"could not connect|connection refused|could not translate host|timeout expired|"
    r"password authentication failed|no password supplied|authentication failed|"
    r"server closed the connection|terminating connection|no connection to the server|"
    r"database is locked|database table is locked|disk is full|disk i/o error|"
    r"network is unreachable|no route to host|the database system is",
    re.IGNORECASE,
)
#: ...and those that mean a missing database or a denied permission (exit 2).
_DATA_TEXT = re.compile(r"does not exist|permission denied|not permitted", re.IGNORECASE)


def driver_module(uri: DatabaseURI) -> Any:
    """The ADBC DB-API module of ``uri``'s database; ``UsageError`` if not installed."""
    name = _DRIVERS[uri.dialect]
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UsageError(f"{uri.dialect} databases need the ADBC drivers: {INSTALL_HINT}") from None


def check_drivers(uri: DatabaseURI) -> None:
    """Refuse now, before any work, where ``uri``'s driver is not installed."""
    driver_module(uri)


@contextlib.contextmanager
def connect(uri: DatabaseURI, *, read_only: bool = False) -> Iterator[Any]:
    """An ADBC connection to ``uri`` (not in autocommit: commit what must last), closed
    on exit; an uncommitted transaction is rolled back. ``read_only`` opens a SQLite
    file read-only, refusing a missing one instead of creating it."""
    module = driver_module(uri)
    if uri.dialect == SQLITE:
        assert uri.path is not None
        if read_only and not uri.path.is_file():
            raise DataError(f"{uri}: no such database file")
        if not read_only and not uri.path.parent.is_dir():
            raise DataError(f"{uri}: the folder {uri.path.parent} does not exist")
    target = uri.driver_uri
    if uri.dialect == SQLITE and read_only:
        target = f"file:{uri.path}?mode=ro"
    with database_errors(uri, "cannot connect"):
        conn = module.connect(target)
        if uri.dialect == SQLITE:
            # wait for another connection's write instead of failing at once
            conn.cursor().execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):  # a lost connection cannot roll back
            conn.close()


@contextlib.contextmanager
def database_errors(uri: DatabaseURI, doing: str) -> Iterator[None]:
    """Re-raise a driver error inside the block as ``DatabaseUnavailable`` or
    ``DataError``: one line, ``TARGET: DOING: CAUSE``, without the password."""
    try:
        yield
    except Exception as exc:
        if not _is_driver_error(exc):
            raise
        kind = error_kind(exc)
        raise kind(uri.redact(f"{uri}: {doing}: {describe(exc)}")) from None


def error_kind(exc: BaseException) -> type[DatabaseUnavailable] | type[DataError]:
    """Which of the two errors a driver error is (see the module docstring)."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    text = str(exc)
    if sqlstate:
        unavailable = sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
        return DatabaseUnavailable if unavailable else DataError
    if _UNAVAILABLE_TEXT.search(text):
        return DatabaseUnavailable
    if _DATA_TEXT.search(text):
        return DataError
    status = getattr(exc, "status_code", None)
    name = getattr(status, "name", str(status))
    if name in ("IO", "TIMEOUT", "CANCELLED", "UNAUTHENTICATED"):
        return DatabaseUnavailable
    return DataError


def describe(exc: BaseException) -> str:
    """The server's or driver's own words, on one line, without the ADBC wrapping
    (status name, ``[libpq]``, "Failed to prepare query", the echoed query)."""
    text = str(exc)
    text = text.split("\nQuery was:")[0].split("\nquery:")[0]
    text = re.sub(r"^[A-Z_]+: ", "", text)
    text = re.sub(r"^\[[A-Za-z]+\] ", "", text)
    text = re.sub(r"^Failed to [a-z ]+: ", "", text)
    text = re.sub(r"^connection to server at .*?failed: ", "", text)
    text = re.sub(r"^could not begin COPY: ", "", text)
    text = re.sub(r"\b(ERROR|FATAL):\s+", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # the first line says it; libpq's LINE/caret pair and hints follow
    first = lines[0] if lines else type(exc).__name__
    return first.rstrip(". ")


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith("adbc_driver") or any(
        (k.__module__ or "").startswith("adbc_driver") for k in type(exc).__mro__
    )
