"""``load_ratings``: any ratings source -> ``RatingsData`` (the one entry point of training)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from movierec.db._uri import is_database_uri
from movierec.serve_batch.errors import UsageError
from movierec.train.data._columns import Columns
from movierec.train.data._dataset import (
    RatingsData,
    drop_repeats,
    ratings_frame,
    release_arrow_memory,
)
from movierec.train.data._items import read_database_items, read_items
from movierec.train.data._layouts import LAYOUTS
from movierec.train.data._log import LogColumns, read_database_log, read_log
from movierec.train.data._movielens import load_movielens

log = logging.getLogger(__name__)


def is_movielens_folder(path: Path) -> bool:
    """A folder holding a MovieLens ratings file (u.data, ratings.dat or ratings.csv)."""
    return path.is_dir() and any((path / lay.ratings_file).is_file() for lay in LAYOUTS)


def load_ratings(
    path: Path | str,
    columns: Columns | None = None,
    items: Path | str | None = None,
    need_time: bool = False,
    *,
    table: str | None = None,
    query: str | None = None,
) -> RatingsData:
    """Read the ratings at ``path``: a MovieLens folder (its own layout and names; ``columns``
    and ``items`` do not apply), or a table of the user's own, a Parquet file, a folder of
    Parquet parts or a CSV file, with the columns ``columns`` names and titles from ``items``.

    ``path`` may also be a database URI (``postgresql://...``, ``sqlite:///...``, read with
    ADBC, ``movierec[db]``): the ratings are ``table`` or the result of ``query``, and
    ``items`` names a table in the same database.

    ``need_time``: the split orders ratings by time, so the time column must be there.
    Raises ``DataError`` naming the file, column and row for anything malformed.
    """
    columns = columns or Columns()
    if is_database_uri(str(path)):
        return _load_database(str(path), columns, items, need_time, table, query)
    if table is not None or query is not None:
        raise UsageError(
            "{table} and {query} read from a database: give --data a database URI "
            "(postgresql://USER@HOST:PORT/DB or sqlite:///PATH)",
            params=("table", "query"),
        )
    path = Path(path).expanduser()
    if is_movielens_folder(path) or (not path.exists() and path.suffix == ""):
        # a missing path without an extension gets the MovieLens folder's message
        if columns != Columns() or items is not None:
            log.warning(
                "%s is a MovieLens folder: it keeps its own column names and movie file "
                "(--user-col, --movie-col, --rating-col, --time-col, --items and --title-col "
                "do not apply)",
                path,
            )
        return load_movielens(path)
    found = read_log(path, columns, need_time)
    movies = None
    if items is not None:
        movies = read_items(Path(items), columns, _text(found.movies))
    return _data(found, columns, movies, path)


def _load_database(
    uri: str,
    columns: Columns,
    items: Path | str | None,
    need_time: bool,
    table: str | None,
    query: str | None,
) -> RatingsData:
    from movierec.db import parse_database_uri

    found = read_database_log(uri, table, query, columns, need_time)
    movies = None
    if items is not None:
        movies = read_database_items(uri, str(items), columns, _text(found.movies))
    what = f"table {table}" if table is not None else "query"
    return _data(found, columns, movies, f"{parse_database_uri(uri)} {what}")


def _text(ids: pa.Array | pa.ChunkedArray) -> bool:
    return pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)


def _data(found: LogColumns, columns: Columns, movies, path: Path | str) -> RatingsData:
    """The ``RatingsData`` of converted columns, repeats dropped. ``path``: where they were
    read (a database source is named by its URI without password, and its table)."""
    data = RatingsData(
        ratings=ratings_frame(found.users, found.movies, found.ratings, found.times),
        users=None,
        movies=movies,
        layout=found.layout,
        rating_scale=(float(found.ratings.min()), float(found.ratings.max())),
        fingerprint=f"{found.layout}:sha256:{found.digest}",
        path=path,
        columns=columns if found.times is not None else replace(columns, time=None),
    )
    data = drop_repeats(data)
    release_arrow_memory()  # the reader's buffers: freed, but kept by the allocator
    return data
