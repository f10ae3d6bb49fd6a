"""``load_ratings``: any ratings source -> ``RatingsData`` (the one entry point of training)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from movierec.train.data._columns import Columns
from movierec.train.data._dataset import RatingsData, drop_repeats, ratings_frame
from movierec.train.data._items import read_items
from movierec.train.data._layouts import LAYOUTS
from movierec.train.data._log import read_log
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
) -> RatingsData:
    """Read the ratings at ``path``: a MovieLens folder (its own layout and names; ``columns``
    and ``items`` do not apply), or a table of the user's own, a Parquet file, a folder of
    Parquet parts or a CSV file, with the columns ``columns`` names and titles from ``items``.

    ``need_time``: the split orders ratings by time, so the time column must be there.
    Raises ``DataError`` naming the file, column and row for anything malformed.
    """
    columns = columns or Columns()
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
    frame = ratings_frame(found.users, found.movies, found.ratings, found.times)
    movies = None
    if items is not None:
        movies = read_items(
            Path(items), columns, movie_ids_are_text=pa.types.is_string(found.movies.type)
        )
    data = RatingsData(
        ratings=frame,
        users=None,
        movies=movies,
        layout=found.layout,
        rating_scale=(float(found.ratings.min()), float(found.ratings.max())),
        fingerprint=f"{found.layout}:sha256:{found.digest}",
        path=path,
        columns=columns if found.times is not None else replace(columns, time=None),
    )
    return drop_repeats(data)
