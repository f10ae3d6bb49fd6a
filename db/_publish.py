"""Publishing a version's table behind a view that switches in one transaction.

::

    recommendations                       the view readers query (SELECT * FROM the table
                                          of the version in service)
    recommendations_20250101t021500z      one table per published version, with an index
    recommendations_20250102t021500z      on its user column

:func:`stage_version` opens a transaction, bulk-loads the Parquet table into a new
``<name>_<version>`` table (ADBC ingest: ``COPY`` on PostgreSQL), indexes its user column
(the table's first column, named as the data names it) and ``ANALYZE``s it. Nothing is
committed until :meth:`StagedVersion.switch` points the view at it and commits, so the
load and the switch land together: a load that fails, is interrupted or is killed
(the server aborts the transaction of a dropped connection) leaves neither the table nor
any change to the view. Readers of the view see the old table until the commit and the
new one after it, each whole.

:func:`prune_tables` drops version tables that the caller no longer keeps, never the one
the view points at; :func:`point_view_at` re-points the view (a rollback).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from movierec.db._connect import connect, database_errors
from movierec.db._dialect import TABLE, VIEW, Dialect, dialect_of
from movierec.db._names import (
    TableName,
    index_name,
    quote_identifier,
    version_of,
    version_sort_key,
    version_table,
)
from movierec.db._uri import DatabaseURI, parse_database_uri
from movierec.serve_batch.errors import DataError

log = logging.getLogger(__name__)

#: How long the switch waits for long queries on the view to end before it asks for the
#: view's lock, and then how long it may wait for that lock (PostgreSQL makes new
#: readers wait behind it meanwhile); past that the publish fails, changing nothing.
UNREAD_WAIT_SECONDS = 60.0
SWITCH_LOCK_SECONDS = 5.0
#: Rows per batch read from the Parquet file into the bulk load.
INGEST_BATCH_ROWS = 1 << 17


@dataclass(frozen=True)
class PublishedTable:
    """What a publish did, for the run report (``target`` has no password)."""

    target: str
    view: str
    table: str
    version: str
    rows: int
    seconds: float
    previous: str | None  # the version the view pointed at before (None: no view yet)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "view": self.view,
            "table": self.table,
            "version": self.version,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "previous": self.previous,
        }


def check_target(uri: str | DatabaseURI, name: str) -> str | None:
    """Connect and check that ``name`` can be published as a view (no table or other
    object holds that name); return the version it serves now (None: nothing yet).
    Cheap: run it before hours of work so that a wrong URI fails at once."""
    uri, view = parse_database_uri(uri), TableName.parse(name, what="publish table")
    with connect(uri) as conn, database_errors(uri, f"cannot check {view}"):
        cursor = conn.cursor()
        dialect = dialect_of(uri)
        _check_view_name(uri, dialect, cursor, view)
        return _served_version(dialect, cursor, view)


class StagedVersion:
    """A version's table loaded inside an open transaction; :meth:`switch` publishes it."""

    def __init__(self, uri: DatabaseURI, conn: Any, view: TableName, version: str):
        self.uri, self.conn, self.view, self.version = uri, conn, view, version
        self.dialect = dialect_of(uri)
        self.table = version_table(view, version)
        self.rows = 0
        self.previous: str | None = None
        self.started = time.perf_counter()
        self.switched = False

    def load(self, parquet: Path) -> None:
        uri, cursor = self.uri, self.conn.cursor()
        with database_errors(uri, f"cannot publish into {self.view}"):
            _check_view_name(uri, self.dialect, cursor, self.view)
            self.previous = _served_version(self.dialect, cursor, self.view)
            if self.dialect.kind(cursor, self.table) is not None:
                raise DataError(
                    f"{uri}: {self.table} already exists; was {self.version} published "
                    "by another home? Drop it or publish under another name"
                )
        schema = pq.read_schema(parquet)
        user_col = schema.names[0]
        with database_errors(uri, f"cannot load {self.table}"):
            reader = pq.ParquetFile(parquet).iter_batches(batch_size=INGEST_BATCH_ROWS)
            stream = pa.RecordBatchReader.from_batches(schema, reader)
            cursor.adbc_ingest(
                self.table.name, stream, mode="create", db_schema_name=self.table.schema
            )
            cursor.execute(
                f"CREATE INDEX {quote_identifier(index_name(self.table))} "
                f"ON {self.table.sql} ({quote_identifier(user_col)})"
            )
            cursor.execute(f"ANALYZE {self.table.sql}")
            cursor.execute(f"SELECT count(*) FROM {self.table.sql}")
            self.rows = int(cursor.fetchone()[0])
        expected = pq.ParquetFile(parquet).metadata.num_rows
        if self.rows != expected:
            raise DataError(
                f"{uri}: {self.table} holds {self.rows} rows after the load, the file "
                f"{parquet} {expected}; nothing was published"
            )
        with database_errors(uri, f"cannot switch {self.view} to {self.table}"):
            # long queries on the view end before the switch asks for its lock (here,
            # not in switch(), which a caller may run with signals held)
            self.dialect.wait_until_unread(cursor, self.view, UNREAD_WAIT_SECONDS)

    def switch(self) -> PublishedTable:
        """Point the view at this version's table and commit: the publish itself (a
        fraction of a second, or at most ``SWITCH_LOCK_SECONDS`` waiting for the view)."""
        uri, cursor = self.uri, self.conn.cursor()
        with database_errors(uri, f"cannot switch {self.view} to {self.table}"):
            self.dialect.lock_timeout(cursor, SWITCH_LOCK_SECONDS)
            self.dialect.switch_view(cursor, self.view, self.table)
            self.conn.commit()
        self.switched = True
        return PublishedTable(
            target=str(uri),
            view=str(self.view),
            table=str(self.table),
            version=self.version,
            rows=self.rows,
            seconds=time.perf_counter() - self.started,
            previous=self.previous,
        )


@contextlib.contextmanager
def stage_version(
    uri: str | DatabaseURI, name: str, version: str, parquet: Path
) -> Iterator[StagedVersion]:
    """Load ``parquet`` as ``version``'s table behind the view ``name`` in an open
    transaction; the block calls ``switch()`` to publish. Leaving the block without it
    (an error, a signal) rolls everything back: the database is as it was."""
    uri, view = parse_database_uri(uri), TableName.parse(name, what="publish table")
    version_table(view, version)  # a name too long: refused before connecting
    with connect(uri) as conn:
        staged = StagedVersion(uri, conn, view, version)
        try:
            staged.load(Path(parquet))
            yield staged
        finally:
            if not staged.switched:
                with contextlib.suppress(Exception):
                    conn.rollback()


def publish_table(uri: str | DatabaseURI, name: str, version: str, parquet: Path) -> PublishedTable:
    """Load ``parquet`` as ``version``'s table and switch the view ``name`` to it, in one
    transaction (see the module docstring)."""
    with stage_version(uri, name, version, parquet) as staged:
        return staged.switch()


def point_view_at(uri: str | DatabaseURI, name: str, version: str) -> str | None:
    """Re-point the view ``name`` at ``version``'s table (a rollback, or the undo of a
    publish whose other half failed); return the version it pointed at before.
    ``DataError`` if that table is gone (pruned)."""
    uri, view = parse_database_uri(uri), TableName.parse(name, what="publish table")
    table = version_table(view, version)
    with connect(uri) as conn, database_errors(uri, f"cannot point {view} at {table}"):
        cursor = conn.cursor()
        dialect = dialect_of(uri)
        _check_view_name(uri, dialect, cursor, view)
        if dialect.kind(cursor, table) != TABLE:
            raise DataError(f"{uri}: {table} does not exist (pruned?); {view} was not changed")
        before = _served_version(dialect, cursor, view)
        dialect.wait_until_unread(cursor, view, UNREAD_WAIT_SECONDS)
        dialect.lock_timeout(cursor, SWITCH_LOCK_SECONDS)
        dialect.switch_view(cursor, view, table)
        conn.commit()
    log.info("%s now selects from %s (was %s)", view, table, before)
    return before


def published_versions(uri: str | DatabaseURI, name: str) -> tuple[list[str], str | None]:
    """The versions that have a table behind the view ``name`` (oldest first), and the
    one the view points at."""
    uri, view = parse_database_uri(uri), TableName.parse(name, what="publish table")
    with connect(uri, read_only=True) as conn, database_errors(uri, f"cannot list {view}"):
        cursor = conn.cursor()
        dialect = dialect_of(uri)
        return _version_tables(dialect, cursor, view), _served_version(dialect, cursor, view)


def prune_tables(uri: str | DatabaseURI, name: str, keep: Collection[str]) -> list[str]:
    """Drop the version tables behind the view ``name`` whose version is not in ``keep``
    (the versions the caller still keeps), never the one the view points at: what
    ``--keep`` pruned, and what a killed run left. Returns the tables dropped."""
    uri, view = parse_database_uri(uri), TableName.parse(name, what="publish table")
    dropped: list[str] = []
    with connect(uri) as conn, database_errors(uri, f"cannot prune the tables of {view}"):
        cursor = conn.cursor()
        dialect = dialect_of(uri)
        served = _served_version(dialect, cursor, view)
        for version in _version_tables(dialect, cursor, view):
            if version in keep or version == served:
                continue
            table = version_table(view, version)
            try:
                dialect.lock_timeout(cursor, SWITCH_LOCK_SECONDS)
                cursor.execute(f"DROP TABLE {table.sql}")
                conn.commit()
            except Exception as exc:  # a reader still on it: the next run drops it
                conn.rollback()
                if getattr(exc, "sqlstate", None) != "55P03":
                    raise
                log.warning("%s is still read; left for the next run to drop", table)
                continue
            dropped.append(str(table))
            log.info("dropped %s", table)
    return dropped


# --- helpers ------------------------------------------------------------------------
def _check_view_name(uri: DatabaseURI, dialect: Dialect, cursor: Any, view: TableName) -> None:
    kind = dialect.kind(cursor, view)
    if kind not in (None, VIEW):
        raise DataError(
            f"{uri}: {view} is a {kind}, not a view; rec-nightly publishes by switching a "
            f"view of that name: rename the {kind} (e.g. ALTER TABLE {view.sql} RENAME TO "
            f"{quote_identifier(view.name + '_old')}) or publish under another name"
        )


def _served_version(dialect: Dialect, cursor: Any, view: TableName) -> str | None:
    target = dialect.view_target(cursor, view)
    return version_of(view, target) if target else None


def _version_tables(dialect: Dialect, cursor: Any, view: TableName) -> list[str]:
    versions = [v for t in dialect.tables(cursor, view.schema) if (v := version_of(view, t))]
    return sorted(versions, key=version_sort_key)
