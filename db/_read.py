"""``read_ratings_table``: a table or a query's result, read as Arrow record batches.

The rows stream from the driver (``cursor.execute`` then ``fetch_record_batch``; the
PostgreSQL driver reads them with ``COPY ... TO STDOUT (FORMAT binary)``), so nothing
but the Arrow table itself is held. Types are the driver's mapping of the column types
(PostgreSQL ``bigint`` -> int64, ``integer`` -> int32, ``real`` -> float32,
``double precision`` -> float64, ``text`` -> string; SQLite has only int64, float64 and
string): a table loaded from a Parquet file by ADBC reads back with that file's types.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from movierec.db._connect import connect, database_errors
from movierec.db._names import TableName, quote_identifier
from movierec.db._uri import DatabaseURI, parse_database_uri
from movierec.serve_batch.errors import DataError, UsageError

#: Rows per block of the fingerprint: the hash covers the data in blocks of this many
#: rows, whatever batch sizes the driver returned, so the same rows give the same hash.
FINGERPRINT_ROWS = 1 << 16


@dataclass(frozen=True)
class DatabaseRead:
    """What ``read_ratings_table`` read: the Arrow ``table``, a ``fingerprint``
    (``database:sha256:<hex>`` of its schema and rows, in order), where it came from
    (``source``: the URI without password, and the table or "query") and how long it took.
    """

    table: pa.Table = field(repr=False)
    fingerprint: str
    source: str
    seconds: float

    @property
    def rows(self) -> int:
        return self.table.num_rows


def read_ratings_table(
    uri: str | DatabaseURI,
    *,
    table: str | None = None,
    query: str | None = None,
    columns: Sequence[str] | None = None,
    progress: bool = False,
) -> DatabaseRead:
    """Read ``table`` (``NAME`` or ``SCHEMA.NAME``) or the result of ``query`` (one
    ``SELECT``) from the database at ``uri``, as one Arrow table.

    ``columns``: the columns to read, in this order (default: all). Names are quoted,
    never pasted into SQL; a missing one is a ``DataError`` naming it. Rows come in the
    order the database returns them: a table is read by one sequential scan (no
    parallel workers, no synchronised scans), so its rows come in storage order, the
    same on every read of unchanged data; a query's rows come in its ``ORDER BY``.

    Raises ``UsageError`` (neither or both of ``table`` and ``query``), ``DataError``
    (missing table or column, bad query, permission denied, no rows) and
    ``DatabaseUnavailable`` (server unreachable, login refused, connection lost).
    """
    uri = parse_database_uri(uri)
    cols = "*" if not columns else ", ".join(quote_identifier(c) for c in columns)
    source, what = _source(table, query)
    if table is None and not columns:
        sql = query.strip().rstrip(";").strip()
    else:
        sql = f"SELECT {cols} FROM {source}"
    started = time.perf_counter()
    with connect(uri, read_only=True) as conn:
        cursor = conn.cursor()
        if uri.dialect == "postgresql" and table is not None:
            with database_errors(uri, "cannot read"):
                # one plain scan: the same row order on every read of the same table
                cursor.execute("SET max_parallel_workers_per_gather = 0")
                cursor.execute("SET synchronize_seqscans = off")
        with database_errors(uri, f"cannot read the {what}"):
            if columns:
                _check_columns(uri, cursor, source, what, columns)
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            result = _read_all(reader, progress)
        cursor.close()
    if result.num_rows == 0:
        raise DataError(f"{uri}: the {what} has no rows")
    return DatabaseRead(
        table=result,
        fingerprint=f"database:{fingerprint_table(result)}",
        source=f"{uri} {what}",
        seconds=time.perf_counter() - started,
    )


def column_names(
    uri: str | DatabaseURI, *, table: str | None = None, query: str | None = None
) -> list[str]:
    """The columns of ``table`` or of ``query``'s result (nothing else is read), so that a
    caller can choose which to read; errors as :func:`read_ratings_table`'s."""
    uri = parse_database_uri(uri)
    source, what = _source(table, query)
    with connect(uri, read_only=True) as conn:
        cursor = conn.cursor()
        with database_errors(uri, f"cannot read the {what}"):
            cursor.execute(f"SELECT * FROM {source} LIMIT 0")
            names = cursor.fetch_arrow_table().schema.names
        cursor.close()
    return names


def _source(table: str | None, query: str | None) -> tuple[str, str]:
    """The SQL ``FROM`` source and the words for it, of a table name or a query."""
    if (table is None) == (query is None):
        raise UsageError("give either {table} or {query}", params=("table", "query"))
    if table is not None:
        name = TableName.parse(table)
        return name.sql, f"table {name}"
    body = query.strip().rstrip(";").strip()
    if not body:
        raise UsageError("{query} is empty", params=("query",))
    return f"({body}) AS movierec_query", "query"


def _check_columns(uri: DatabaseURI, cursor, source: str, what: str, columns) -> None:
    """``DataError`` naming the missing columns and those present (SQLite would read a
    quoted unknown column as a string constant instead of refusing it)."""
    cursor.execute(f"SELECT * FROM {source} LIMIT 0")
    present = cursor.fetch_arrow_table().schema.names
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataError(
            f"{uri}: the {what} has no column {', '.join(map(repr, missing))} "
            f"(its columns: {', '.join(present)})"
        )


def _read_all(reader: pa.RecordBatchReader, progress: bool) -> pa.Table:
    """The batches as one table, without the drivers' per-field metadata (so that the
    schema equals a Parquet file's of the same columns)."""
    from tqdm import tqdm

    schema = pa.schema([f.remove_metadata() for f in reader.schema])
    batches = []
    with tqdm(
        unit="rows", unit_scale=True, desc="read", disable=None if progress else True, leave=False
    ) as bar:
        for batch in reader:
            batches.append(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            bar.update(batch.num_rows)
    return pa.Table.from_batches(batches, schema=schema)


def fingerprint_table(table: pa.Table) -> str:
    """``sha256:<hex>`` of ``table``'s schema and rows in order: the Arrow IPC stream of
    its rows in blocks of ``FINGERPRINT_ROWS`` (one block copied at a time), so that how
    the rows were split into batches does not change it."""
    digest = hashlib.sha256()

    class _Sink:
        def write(self, data: bytes) -> int:
            digest.update(data)
            return len(data)

        closed = False

        def flush(self) -> None:
            pass

    schema = pa.schema([f.remove_metadata() for f in table.schema])
    with pa.ipc.new_stream(pa.PythonFile(_Sink(), mode="w"), schema) as writer:
        for start in range(0, table.num_rows, FINGERPRINT_ROWS):
            block = table.slice(start, FINGERPRINT_ROWS).combine_chunks()
            for batch in block.to_batches():
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    return f"sha256:{digest.hexdigest()}"
