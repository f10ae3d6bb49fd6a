"""List quality of a published table: how much of the catalog the lists use, and how
much a few films dominate them, beside the same figures for the popularity baseline.

* **coverage**: the share of the catalog's movies (those with a rating in the data) that
  appear in any list;
* **top_1pct_share**: the share of list slots taken by the 1% most-rated movies;
* **gini**: the Gini index of how often each catalog movie appears (0: every movie as
  often, 1: one movie in every slot).

The popularity baseline gives each of the table's users the ``k`` most-rated movies they
did not rate. Its counts are computed without building any list: the movie at
popularity position ``q`` is in user ``u``'s list when ``u`` did not rate it and ``q`` is
at most ``T_u``, the position of ``u``'s ``k``-th unrated movie, which is ``k - 1`` plus
the number of ``u``'s rated positions before it. Everything is a sort or a ``bincount``
over the ratings, and the table is read a batch at a time, so the cost grows with the
ratings and the table, never with users x movies.

The table's ID columns are its first and third (``user, rank, movie, ...``, whatever the
training data called them), and IDs may be integers or strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from movierec.serve_batch import contract
from movierec.serve_batch._sorting import sorted_unique
from movierec.serve_batch.errors import ArtifactError
from movierec.train.data import Vocabulary
from movierec.train.data._vocab import ids_to_arrow
from movierec.train.split import Part

#: Rows read from the table at a time.
BATCH_ROWS = 1 << 20
#: The share of the catalog counted as "the most-rated movies".
MOST_RATED_SHARE = 0.01
SAMPLE_USERS = 5
TOP_MOVIES = 10


def measure_lists(
    table: Path,
    vocab: Vocabulary,
    ratings: list[Part],
    k: int,
    *,
    titles: Mapping[Any, str] | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The list quality of ``table`` (a top-``k`` table) and of the popularity baseline
    for the same users, over the data ``ratings`` (parts on ``vocab``'s rows).

    Returns ``(figures, samples)``: the figures (JSON-ready; ``top_movies`` are the ten
    movies in most lists) and the top-k of ``SAMPLE_USERS`` users drawn with ``seed``.
    """
    user_col, movie_col = id_columns(table)
    rated = Part.concat(ratings)
    n_movies = vocab.n_movies
    rating_counts = np.bincount(rated.movie_idx, minlength=n_movies)

    movie_set, user_set = ids_to_arrow(vocab.movie_ids), ids_to_arrow(vocab.user_ids)
    shown = np.zeros(n_movies, np.int64)
    known_users = np.zeros(vocab.n_users, bool)
    unknown_users: list[pa.Array] = []
    for batch in _batches(table, [user_col, movie_col]):
        rows = _rows_of(batch.column(1), movie_set)
        shown += np.bincount(rows[rows >= 0], minlength=n_movies)
        users = pc.unique(batch.column(0))
        user_rows = _rows_of(users, user_set)
        known_users[user_rows[user_rows >= 0]] = True
        unknown_users.append(users.filter(pa.array(user_rows < 0)))
    unknown = pc.unique(pa.concat_arrays(unknown_users)) if unknown_users else pa.array([])
    n_unknown = len(unknown)

    popular = popularity_counts(rated, vocab, known_users, n_unknown, k, rating_counts)
    most_rated = most_rated_movies(rating_counts)
    figures = {
        "k": k,
        "users": int(known_users.sum()) + n_unknown,
        "catalog_movies": n_movies,
        "most_rated_movies": len(most_rated),
        "model": list_figures(shown, most_rated),
        "popularity": list_figures(popular, most_rated),
        "top_movies": top_movies(shown, vocab, titles or {}, TOP_MOVIES),
    }
    users = np.concatenate([vocab.user_ids[known_users], _values(unknown, vocab.user_ids)])
    samples = sample_lists(table, users, titles or {}, seed)
    return figures, samples


def id_columns(table: Path) -> tuple[str, str]:
    """The user and movie columns of a top-k table: its first and third."""
    names = pq.read_schema(table).names
    if len(names) < 3 or names[1] != contract.RANK_COL:
        raise ArtifactError(
            f"{table}: expected a top-k table (user, {contract.RANK_COL}, movie, ...), "
            f"found the columns {names}"
        )
    return names[0], names[2]


def popularity_counts(
    rated: Part,
    vocab: Vocabulary,
    users: np.ndarray,
    n_unknown: int,
    k: int,
    rating_counts: np.ndarray,
) -> np.ndarray:
    """How many of the popularity baseline's top-``k`` lists each movie is in, for the
    users marked in ``users`` (a mask over the vocabulary's users) and ``n_unknown``
    users who rated nothing (see the module docstring for the method)."""
    n_movies = vocab.n_movies
    order = popularity_order(rating_counts)
    position = np.empty(n_movies, np.int64)
    position[order] = np.arange(n_movies)
    keep = users[rated.user_idx]
    # each user's rated positions, once each (the data may repeat a pair), sorted
    # (a sort: numpy's hashing unique took 25 s for 25M ratings)
    keys = sorted_unique(rated.user_idx[keep] * n_movies + position[rated.movie_idx[keep]])
    user, pos = keys // n_movies, keys % n_movies
    first = np.searchsorted(user, user)  # where each user's run of keys starts
    before = pos - (np.arange(len(keys)) - first)  # unrated positions before pos
    in_reach = before <= k - 1  # rated, and before the user's k-th unrated movie
    reach = k - 1 + np.bincount(user[in_reach], minlength=vocab.n_users)
    last = np.minimum(reach[users], n_movies - 1)  # T_u of each chosen user
    last = np.concatenate([last, np.full(n_unknown, min(k - 1, n_movies - 1))])
    reaching = np.cumsum(np.bincount(last, minlength=n_movies)[::-1])[::-1]  # T_u >= q
    by_position = reaching - np.bincount(pos[in_reach], minlength=n_movies)
    counts = np.empty(n_movies, np.int64)
    counts[order] = by_position
    return counts


def popularity_order(rating_counts: np.ndarray) -> np.ndarray:
    """Movie rows from the most rated down (ties: the lower row first)."""
    return np.argsort(-rating_counts, kind="stable")


def most_rated_movies(rating_counts: np.ndarray) -> np.ndarray:
    n = max(1, math.ceil(MOST_RATED_SHARE * len(rating_counts)))
    return popularity_order(rating_counts)[:n]


def list_figures(counts: np.ndarray, most_rated: np.ndarray) -> dict[str, Any]:
    """Coverage, the most-rated movies' share of the slots, and the Gini index of
    ``counts`` (how many lists each catalog movie is in)."""
    slots = int(counts.sum())
    in_lists = int(np.count_nonzero(counts))
    return {
        "coverage": round(in_lists / len(counts), 6) if len(counts) else 0.0,
        "movies_in_lists": in_lists,
        "slots": slots,
        "top_1pct_share": round(int(counts[most_rated].sum()) / slots, 6) if slots else 0.0,
        "gini": round(gini(counts), 6),
    }


def gini(counts: np.ndarray) -> float:
    """The Gini index of non-negative ``counts`` (0 where all are equal or all zero)."""
    x = np.sort(np.asarray(counts, np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1) / n)


def top_movies(
    counts: np.ndarray, vocab: Vocabulary, titles: Mapping[Any, str], n: int
) -> list[dict[str, Any]]:
    """The ``n`` movies in most lists (ties: the lower row first), with their titles."""
    order = np.argsort(-counts, kind="stable")[:n]
    order = order[counts[order] > 0]
    return [
        {"movie": movie, "title": titles.get(movie), "lists": int(count)}
        for movie, count in zip(vocab.movie_ids[order].tolist(), counts[order], strict=True)
    ]


def sample_lists(
    table: Path, users: np.ndarray, titles: Mapping[Any, str], seed: int
) -> list[dict[str, Any]]:
    """The rows of ``SAMPLE_USERS`` users drawn from ``users`` with ``seed``, by rank."""
    if len(users) == 0:
        return []
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(users, size=min(SAMPLE_USERS, len(users)), replace=False))
    names = pq.read_schema(table).names
    extra = [n for n in (contract.PREDICTION_COL, contract.SCORE_COL) if n in names]
    value_set = pa.array(chosen.tolist())
    lists: dict[Any, list[dict[str, Any]]] = {u: [] for u in chosen.tolist()}
    for batch in _batches(table, names[:3] + extra):
        rows = batch.filter(pc.is_in(batch.column(0), value_set=value_set)).to_pylist()
        for row in rows:
            movie = row[names[2]]
            item = {"rank": row[names[1]], "movie": movie, "title": titles.get(movie)}
            for col in extra:
                item[col] = round(float(row[col]), 4)
            lists[row[names[0]]].append(item)
    return [
        {"user": user, "items": sorted(items, key=lambda i: i["rank"])}
        for user, items in lists.items()
    ]


def _batches(table: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(table).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def _rows_of(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    """Each value's position in ``value_set`` (-1 where absent), as int64."""
    found = pc.index_in(values, value_set=value_set)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), np.int64)


def _values(array: pa.Array, like: np.ndarray) -> np.ndarray:
    """An Arrow array's values as a numpy array of ``like``'s kind (integers or objects)."""
    return np.asarray(array.to_pylist(), dtype=np.int64 if like.dtype.kind in "iu" else object)
