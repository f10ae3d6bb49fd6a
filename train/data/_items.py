"""Read a user's items table (``--items``): movie ID -> title, for the tables' title column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from movierec.serve_batch.errors import DataError
from movierec.train.data._columns import Columns
from movierec.train.data._convert import Where, convert_ids
from movierec.train.data._log import parquet_parts, table_format
from movierec.train.data._parse import year_from_title


def read_items(path: Path, columns: Columns, movie_ids_are_text: bool) -> pd.DataFrame:
    """``movie_id, title, year, genres`` of the items table at ``path`` (Parquet file or
    folder, or CSV), keyed by ``columns.movie`` with titles in ``columns.title``.

    ``movie_ids_are_text``: the ratings' movie IDs are strings, so the items' are read as
    text too (integers written as their decimal text); otherwise they must be integers.
    A movie listed twice, or a null ID, is an error naming the row; a null title is empty.
    """
    path = Path(path).expanduser()
    wanted = [columns.movie, columns.title]
    if path.is_dir():
        files = parquet_parts(path)
        if not files:
            raise DataError(f"{path}: the items folder holds no .parquet files")
        fmt = "parquet"
    else:
        fmt = table_format(path)
        if fmt is None:
            raise DataError(
                f"{path}: unsupported items file type; expected .parquet, .csv or .csv.gz"
            )
        if not path.is_file():
            raise DataError(f"{path}: items file not found")
        files = [path]
    tables = []
    for file in files:
        try:
            if fmt == "parquet":
                present = pq.ParquetFile(file).schema_arrow.names
            else:
                with pa.input_stream(str(file), compression="detect") as probe:
                    present = pacsv.open_csv(probe).schema.names
            _check(file, present, wanted)
            if fmt == "parquet":
                table = pq.read_table(file, columns=wanted)
            else:
                table = pacsv.read_csv(
                    str(file),
                    convert_options=pacsv.ConvertOptions(
                        include_columns=wanted,
                        column_types=dict.fromkeys(wanted, pa.string()),
                        strings_can_be_null=False,
                    ),
                )
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            raise DataError(f"{file}: not a readable items table ({exc})".splitlines()[0]) from exc
        tables.append(_titles(file, table, columns, movie_ids_are_text, fmt == "csv"))
    return _frame(tables, columns)


def read_database_items(
    uri: str, table: str, columns: Columns, movie_ids_are_text: bool
) -> pd.DataFrame:
    """:func:`read_items` of a table in a database (``--items`` beside ``--data URI``)."""
    from movierec.db import read_ratings_table

    read = read_ratings_table(uri, table=table, columns=[columns.movie, columns.title])
    found = _titles(read.source, read.table, columns, movie_ids_are_text, False)
    return _frame([found], columns)


def _titles(
    source, table: pa.Table, columns: Columns, movie_ids_are_text: bool, text_ids: bool
) -> tuple:
    """``(source, movie IDs of the ratings' type, titles)`` of one items table."""
    ids = convert_ids(
        table.column(columns.movie), Where(str(source), columns.movie), "movie", text_ids
    )
    if movie_ids_are_text and not pa.types.is_string(ids.type):
        ids = ids.cast(pa.string())
    elif not movie_ids_are_text and not pa.types.is_integer(ids.type):
        raise DataError(
            f"{source}: column {columns.movie!r} holds text IDs, but the ratings' movie IDs "
            "are integers; the items table must use the ratings' movie IDs"
        )
    titles = table.column(columns.title).cast(pa.string())
    return (source, ids, pc.fill_null(titles, ""))


def _check(file: Path, present: list[str], wanted: list[str]) -> None:
    for name in wanted:
        if name not in present:
            raise DataError(
                f"{file}: no column {name!r}; columns found: {', '.join(present) or 'none'} "
                "(name them with --movie-col and --title-col)"
            )


def _frame(tables: list, columns: Columns) -> pd.DataFrame:
    ids = pa.chunked_array([t[1] for t in tables])
    titles = [str(v) for t in tables for v in t[2].to_pylist()]
    if pa.types.is_integer(ids.type):
        movie_ids = np.asarray(ids.to_numpy(), dtype=np.int64)
    else:
        movie_ids = np.asarray(ids.to_pylist(), dtype=object)
    _, first, counts = np.unique(movie_ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = movie_ids[first[counts > 1][0]]
        rows = np.flatnonzero(movie_ids == dup)[:2]
        where = _locate(tables, rows)
        raise DataError(
            f"{where[1][0]}: movie {dup!r} (column {columns.movie!r}) is listed twice, at rows "
            f"{where[0][1]} and {where[1][1]} (0-based data rows); each movie needs one title"
        )
    return pd.DataFrame(
        {
            "movie_id": movie_ids,
            "title": titles,
            "year": np.array([year_from_title(t) for t in titles], dtype=np.float64),
            "genres": [""] * len(titles),
        }
    )


def _locate(tables: list, rows: np.ndarray) -> list[tuple[Path, int]]:
    """``(file, row within it)`` of rows of the concatenated tables."""
    out = []
    for row in rows:
        start = 0
        for file, ids, _ in tables:
            if row < start + len(ids):
                out.append((file, int(row - start)))
                break
            start += len(ids)
    return out
