"""``RatingsData``: a ratings table in canonical columns, encoded once, repeats dropped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from movierec.train.data._columns import MOVIE, RATING, TIME, USER, Columns
from movierec.train.data._vocab import Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class RatingsData:
    """A ratings table read into canonical columns, whatever its source.

    ``ratings``: ``user_id`` and ``movie_id`` (int64, or for string IDs a pandas
    ``Categorical`` whose categories are the sorted distinct IDs: no Python string per
    row), ``rating`` float32 and, where the source has times, ``timestamp`` int64 Unix
    seconds; in file order, each (user, movie) pair once (the latest rating kept).
    ``users``: ``user_id``, ``age``, ``gender``, ``occupation`` (MovieLens 100K / 1M
    only); ``movies``: ``movie_id``, ``title``, ``year`` (NaN where the title has no
    "(1995)" suffix), ``genres``; None where the source has none.
    ``layout``: "ml-100k", "ml-1m" (also ml-10m) and "csv" for MovieLens folders;
    "parquet", "parquet-folder" and "csv-file" for a table of the user's own.
    ``columns``: the source's column names (a MovieLens folder: the defaults), which name
    the ID columns of every table written for this data.
    ``rating_scale``: (min, max) of the ratings present.
    ``fingerprint``: ``"<layout>:sha256:<hex>"`` of the bytes read.
    ``duplicates_dropped``: repeated ratings of one (user, movie) pair that were dropped.
    """

    ratings: pd.DataFrame = field(repr=False)
    users: pd.DataFrame | None = field(repr=False)
    movies: pd.DataFrame | None = field(repr=False)
    layout: str
    rating_scale: tuple[float, float]
    fingerprint: str
    #: Where the ratings were read: a file or folder; for a database, its URI (without
    #: password) and table or "query".
    path: Path | str
    columns: Columns = field(default_factory=Columns)
    duplicates_dropped: int = 0

    @property
    def has_time(self) -> bool:
        return TIME in self.ratings.columns

    @cached_property
    def encoded(self) -> tuple[Vocabulary, np.ndarray, np.ndarray]:
        """``(vocabulary, user rows, movie rows)``: raw IDs mapped to consecutive rows over
        the whole table (sorted IDs), computed once."""
        user_ids, user_idx = _encode(self.ratings[USER])
        movie_ids, movie_idx = _encode(self.ratings[MOVIE])
        return Vocabulary(user_ids, movie_ids), user_idx, movie_idx

    def counts(self) -> dict[str, int]:
        """Ratings, users and movies (what the reports and the data gate compare)."""
        released = self.__dict__.get("_counts")
        if released is not None:
            return dict(released)
        vocab = self.encoded[0]
        return {"ratings": len(self.ratings), "users": vocab.n_users, "movies": vocab.n_movies}

    def release_ratings(self) -> None:
        """Free the ratings table once a split holds them (25M ratings: 0.65 GB of table and
        0.4 GB of encoded rows); everything else stays (counts, scale, titles, names).
        ``ratings`` becomes an empty frame with the same columns."""
        self.__dict__["_counts"] = self.counts()
        object.__setattr__(self, "ratings", self.ratings.iloc[:0].copy())
        self.__dict__.pop("encoded", None)
        release_arrow_memory()


def release_arrow_memory() -> None:
    """Return the memory pyarrow's allocator keeps for reuse to the system: after reading
    25M ratings it held about 1 GB that nothing used (bench/log_formats.py)."""
    pa.default_memory_pool().release_unused()


def _encode(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        ids = np.asarray(column.cat.categories, dtype=object)
        return ids, column.cat.codes.to_numpy().astype(np.int64)
    ids, idx = np.unique(column.to_numpy(np.int64), return_inverse=True)
    return ids, idx.astype(np.int64).reshape(-1)


def id_series(ids: pa.Array) -> pd.Series | np.ndarray:
    """An ID column for the ratings frame: int64 as it is, strings as a ``Categorical``
    over their sorted distinct values (one Python string per distinct ID, not per row)."""
    if pa.types.is_integer(ids.type):
        return np.asarray(ids.to_numpy(), dtype=np.int64)
    distinct = pc.unique(ids)
    distinct = distinct.take(pc.array_sort_indices(distinct))
    codes = pc.index_in(ids, value_set=distinct).to_numpy(zero_copy_only=False)
    categories = pd.Index(np.asarray(distinct.to_pylist(), dtype=object), dtype=object)
    return pd.Categorical.from_codes(codes.astype(np.int32), categories=categories)


def drop_repeats(data: RatingsData) -> RatingsData:
    """Keep one rating per (user, movie) pair: the latest by time, the last in file order
    where times tie or there are none. Row order is kept otherwise.

    One sort of the pair keys finds out whether any pair repeats (none in MovieLens); only
    the rows of repeated pairs are sorted again by time."""
    vocab, users, movies = data.encoded
    keys = users * np.int64(max(vocab.n_movies, 1)) + movies
    ordered = np.sort(keys)  # 25M keys: about 2 s, and all that a table without repeats costs
    if not (ordered[1:] == ordered[:-1]).any():
        return data
    order = np.argsort(keys)
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    repeated = np.zeros(keys.size, dtype=bool)
    repeated[:-1] |= same
    repeated[1:] |= same
    rows = order[repeated]  # every row of a repeated pair
    times = data.ratings[TIME].to_numpy()[rows] if data.has_time else np.zeros(rows.size, np.int64)
    by = np.lexsort((rows, times, keys[rows]))  # pair, then time, then file order
    rows, group = rows[by], keys[rows][by]
    last = np.ones(rows.size, dtype=bool)
    last[:-1] = group[1:] != group[:-1]
    keep = np.ones(keys.size, dtype=bool)
    keep[rows[~last]] = False
    dropped = int((~keep).sum())
    log.info(
        "%s: %d repeated ratings of the same (user, movie) pair dropped, the latest of each kept",
        data.path,
        dropped,
    )
    frame = data.ratings[keep].reset_index(drop=True)
    kept = replace(data, ratings=frame, duplicates_dropped=data.duplicates_dropped + dropped)
    # the vocabulary is unchanged (each pair keeps one rating): carry the encoding over
    kept.__dict__["encoded"] = (vocab, users[keep], movies[keep])
    return kept


def ratings_frame(
    users: pa.Array, movies: pa.Array, ratings: np.ndarray, times: np.ndarray | None
) -> pd.DataFrame:
    """The canonical ratings frame of converted columns."""
    frame = {
        USER: id_series(users),
        MOVIE: id_series(movies),
        RATING: np.asarray(ratings, dtype=np.float32),
    }
    if times is not None:
        frame[TIME] = np.asarray(times, dtype=np.int64)
    return pd.DataFrame(frame, copy=False)
