"""Read a user's own ratings table: a Parquet file, a folder of Parquet parts, or a CSV file.

Only the named columns are read, by pyarrow, and converted column by column
(``_convert``): no Python object per row, and no more memory than the columns need.
The parts of a folder are read in file-name order (names starting with ``.`` or ``_``
are skipped, as Spark and Hive write them) and must agree on the types of the columns
read; errors name the part and its row.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from movierec.serve_batch.errors import DataError
from movierec.train.data._columns import TIME, Columns
from movierec.train.data._convert import Where, convert_ids, convert_ratings, convert_times

#: File name endings of tables we read, and their format.
TABLE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv"}
_HASH_CHUNK = 1 << 22


@dataclass(frozen=True, eq=False)  # holds arrays
class LogColumns:
    """The converted columns of a ratings table."""

    users: pa.Array
    movies: pa.Array
    ratings: np.ndarray
    times: np.ndarray | None
    layout: str
    digest: str


def table_format(path: Path) -> str | None:
    """ "parquet" or "csv" from the file name's ending; None for anything else."""
    name = path.name.lower()
    for ending, fmt in TABLE_FORMATS.items():
        if name.endswith(ending) and len(name) > len(ending):
            return fmt
    return None


def parquet_parts(folder: Path) -> list[Path]:
    """The ``*.parquet`` files under ``folder`` in name order (hidden and ``_`` names skipped)."""
    return sorted(
        p
        for p in folder.rglob("*.parquet")
        if p.is_file() and not any(s.startswith((".", "_")) for s in p.relative_to(folder).parts)
    )


def read_log(path: Path, columns: Columns, need_time: bool) -> LogColumns:
    """The ratings of a Parquet file, a folder of Parquet parts or a CSV file.

    ``columns.time`` is read where the table has it; ``need_time``: a missing time column
    is an error (a time-based split), else the table is taken to have no times.
    """
    if path.is_dir():
        parts = parquet_parts(path)
        if not parts:
            raise DataError(
                f"{path} holds no data files: expected Parquet files (*.parquet, read as one "
                "table), or a MovieLens folder (u.data, ratings.dat or ratings.csv)"
            )
        layout, fmt = "parquet-folder", "parquet"
    else:
        fmt = table_format(path)
        if fmt is None:
            raise DataError(
                f"{path}: unsupported ratings file type; expected a Parquet file (.parquet), a "
                "CSV file (.csv or .csv.gz), a folder of Parquet files, or a MovieLens folder"
            )
        if not path.exists():
            raise DataError(f"{path}: ratings file not found")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the ratings file is empty (0 bytes)")
        parts, layout = [path], ("parquet" if fmt == "parquet" else "csv-file")
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(_digest, parts, path)  # hashing releases the GIL
        if fmt == "parquet":
            found = _read_parquet_parts(parts, columns, need_time)
        else:
            found = _read_csv(path, columns, need_time)
        return LogColumns(*found, layout=layout, digest=digest.result())


def read_database_log(
    uri: str, table: str | None, query: str | None, columns: Columns, need_time: bool
) -> LogColumns:
    """The ratings of a database ``table`` or ``query`` (``movierec.db``, ADBC: Arrow record
    batches, no Python object per row), converted as a Parquet file's columns are."""
    from movierec.db import column_names, parse_database_uri, read_ratings_table

    present = column_names(uri, table=table, query=query)
    source = f"{parse_database_uri(uri)} {'table ' + table if table else 'query'}"
    wanted = _wanted(columns, present, source, need_time)
    read = read_ratings_table(uri, table=table, query=query, columns=wanted)
    found = _convert(read.table, wanted, read.source, text_ids=False)
    # the reader's fingerprint is "database:sha256:<hex>" of what was read
    return LogColumns(*found, layout="database", digest=read.fingerprint.rsplit(":", 1)[1])


def _digest(parts: list[Path], root: Path) -> str:
    """SHA-256 of the parts' names (relative to the folder) and bytes, in order."""
    h = hashlib.sha256()
    for part in parts:
        if len(parts) > 1:
            h.update(str(part.relative_to(root)).encode() + b"\0")
        try:
            with open(part, "rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise DataError(f"{part}: cannot read the file ({exc.strerror or exc})") from exc
    return h.hexdigest()


def _wanted(columns: Columns, present: list[str], source: str, need_time: bool) -> list[str]:
    """The columns to read, or a ``DataError`` naming the missing one and listing those present."""
    roles = [("user", columns.user), ("movie", columns.movie), ("rating", columns.rating)]
    # the default time column is read where it is there; one named by --time-col must be
    if columns.time is not None and (need_time or columns.time != TIME or columns.time in present):
        roles.append(("time", columns.time))
    for role, name in roles:
        if name not in present:
            hint = " (a time-based --split needs one)" if role == "time" else ""
            raise DataError(
                f"{source}: no column {name!r} for the {role}s{hint}; columns found: "
                f"{', '.join(present) or 'none'} (name the columns with --user-col, "
                "--movie-col, --rating-col and --time-col)"
            )
    if need_time and columns.time is None:
        raise DataError(f"{source}: a time-based --split needs a time column (--time-col)")
    return [name for _, name in roles]


def _read_parquet_parts(
    parts: list[Path], columns: Columns, need_time: bool
) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray | None]:
    first_schema = None
    wanted: list[str] = []
    pieces: list[tuple] = []
    for part in parts:
        try:
            pf = pq.ParquetFile(part)
            schema = pf.schema_arrow
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{part}: not a readable Parquet file ({_first_line(exc)})") from exc
        if first_schema is None:
            wanted = _wanted(columns, schema.names, str(part), need_time)
            first_schema = {n: schema.field(n).type for n in wanted}
        else:
            _same_types(part, parts[0], schema, first_schema)
        try:
            table = pf.read(columns=wanted, use_threads=True)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{part}: cannot read the file ({_first_line(exc)})") from exc
        pieces.append(_convert(table, wanted, str(part), text_ids=False))
        del table
    return _concat(pieces, parts)


def _same_types(part: Path, first: Path, schema: pa.Schema, want: dict[str, pa.DataType]) -> None:
    for name, t in want.items():
        if name not in schema.names:
            raise DataError(
                f"{part}: no column {name!r}, which {first} has; every part of a Parquet folder "
                f"needs the same columns (found: {', '.join(schema.names)})"
            )
        got = schema.field(name).type
        if _kind(got) != _kind(t):
            raise DataError(
                f"{part}: column {name!r} has type {got}, but {t} in {first}; every part of a "
                "Parquet folder needs the same column types"
            )


def _kind(t: pa.DataType) -> str:
    """What a column's type means here: parts may differ in width or encoding (int32 and
    int64, string and large_string, dictionary-encoded text), not in kind."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    return str(t)


def _read_csv(
    path: Path, columns: Columns, need_time: bool
) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray | None]:
    source = str(path)
    try:
        with pa.input_stream(source, compression="detect") as probe:
            header = pacsv.open_csv(probe, read_options=pacsv.ReadOptions(block_size=1 << 16))
            present = header.schema.names
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({_first_line(exc)})") from exc
    wanted = _wanted(columns, present, source, need_time)
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted,
                column_types=dict.fromkeys(wanted, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({_first_line(exc)})") from exc
    return _concat([_convert(table, wanted, source, text_ids=True)], [path])


def _convert(table: pa.Table, wanted: list[str], source: str, text_ids: bool) -> tuple:
    user, movie, rating = wanted[:3]
    if table.num_rows == 0:
        raise DataError(f"{source} has no ratings (a header or schema, but no rows)")
    users = convert_ids(table.column(user), Where(source, user), "user", text_ids)
    movies = convert_ids(table.column(movie), Where(source, movie), "movie", text_ids)
    ratings = convert_ratings(table.column(rating), Where(source, rating))
    times = None
    if len(wanted) > 3:
        times = convert_times(table.column(wanted[3]), Where(source, wanted[3]))
    return users, movies, ratings, times


def _concat(
    pieces: list[tuple], parts: list[Path]
) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray | None]:
    if len(pieces) == 1:
        return pieces[0]
    for side in (0, 1):  # CSV text IDs can turn out integers in one part, text in another
        kinds = {p[side].type for p in pieces}
        if len(kinds) > 1:
            raise DataError(
                f"{parts[0].parent}: the {('user', 'movie')[side]} IDs are integers in some "
                "parts and text in others; every part needs the same ID type"
            )
    users = pa.concat_arrays([p[0] for p in pieces])
    movies = pa.concat_arrays([p[1] for p in pieces])
    ratings = np.concatenate([p[2] for p in pieces])
    times = None if pieces[0][3] is None else np.concatenate([p[3] for p in pieces])
    return users, movies, ratings, times


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
