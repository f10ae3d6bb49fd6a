"""Rating error and top-k ranking metrics, with the ranking protocol pinned.

Protocol: for each test user the model knows, the candidates are all movies the model
knows that the user did not rate in train or validation; relevant items are that user's
test ratings >= ``relevance``; users with no relevant item are left out. Ties are broken
by movie index ascending. (With a random split the model knows nearly every user and
movie; with a time-based one, the holdout's new users and movies are what it does not.)

Cost grows with the users evaluated times the movies, never users x movies at once:
users are scored a block at a time (at most ``PAIRS_PER_BLOCK`` scores), the seen and
relevant movies are per-user CSR lists, and where more than ``max_users`` users qualify,
a fixed seeded sample of them is evaluated (the result says how many).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from movierec.train.fallback import Fallback
from movierec.train.implicit import Neighbours, neighbour_lists
from movierec.train.split import Split

#: Scores per block of users (users per block = this // movies, at least 1): 2M float64
#: scores are 16 MB per scoring.
PAIRS_PER_BLOCK = 1 << 21


def rating_errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE, MSE and MAE of predicted against true ratings."""
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    mse = float(np.mean(err**2))
    return {"rmse": float(np.sqrt(mse)), "mse": mse, "mae": float(np.mean(np.abs(err)))}


def rank_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` best scores per row, best first, ties by index.

    A partition finds each row's k-th best score; only the columns scoring at least that
    much are sorted (by score descending, then index), so a row costs O(n + k log k)
    instead of a full sort."""
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k == 0 or n_rows == 0:
        return np.zeros((n_rows, k), np.int64)
    neg = -scores
    kth = np.partition(neg, k - 1, axis=1)[:, k - 1 : k]
    rows, cols = np.nonzero(neg <= kth)  # row-major: rows ascending, then columns
    order = np.lexsort((cols, neg[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    first = np.searchsorted(rows, np.arange(n_rows))
    return cols[first[:, None] + np.arange(k)].astype(np.int64)


@dataclass(frozen=True)
class RankingTask:
    """Who is evaluated against what: users, their seen (excluded) and relevant movies."""

    users: np.ndarray  # user rows evaluated, ascending
    eligible: int  # users with at least one relevant movie (known to the model or not)
    seen: Neighbours
    relevant: Neighbours
    n_movies: int
    #: Movies that may be recommended (those the model knows); None: every movie.
    candidates: np.ndarray | None = None
    #: Users with a relevant movie whom the model does not know (not evaluated).
    unknown_users: int = 0


def ranking_task(
    split: Split,
    target: str = "test",
    relevance: float = 4.0,
    max_users: int = 0,
    seed: int = 0,
    known: Fallback | None = None,
) -> RankingTask:
    """The users to rank for (a seeded sample of ``max_users`` where more qualify; 0: all)
    and per-user CSR lists of their seen and relevant movies.

    ``known``: what the model knows (``movierec.train.fallback``): only users it knows are
    ranked, and only movies it knows are candidates (the exported model's catalog); the
    others' relevant ratings still count as relevant. None: every user and movie."""
    if target not in ("test", "val"):
        raise ValueError(f"target must be 'test' or 'val', got {target!r}")
    n_users, n_movies = split.vocab.n_users, split.vocab.n_movies
    test = split.test if target == "test" else split.val
    seen_parts = [split.train, split.val] if target == "test" else [split.train]
    relevant = test.rating >= relevance
    users = np.flatnonzero(np.bincount(test.user_idx[relevant], minlength=n_users))
    eligible = int(users.size)
    unknown = 0
    candidates = None
    if known is not None:
        kept = known.known_users[users]
        unknown = int((~kept).sum())
        users = users[kept]
        candidates = None if known.known_movies.all() else known.known_movies
    if max_users and users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    seen = neighbour_lists(
        np.concatenate([p.user_idx for p in seen_parts]),
        np.concatenate([p.movie_idx for p in seen_parts]),
        n_users,
    )
    rel = neighbour_lists(test.user_idx[relevant], test.movie_idx[relevant], n_users)
    return RankingTask(users, eligible, seen, rel, n_movies, candidates, unknown)


def _gather(lists: Neighbours, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(position in rows, column)`` of every entry of the lists of ``rows``."""
    start, stop = lists.indptr[rows], lists.indptr[rows + 1]
    lens = stop - start
    offsets = np.cumsum(lens) - lens
    flat = np.repeat(start - offsets, lens) + np.arange(int(lens.sum()))
    return np.repeat(np.arange(rows.size), lens), lists.indices[flat]


def ranking_metrics(
    split: Split,
    score_users: Callable[[np.ndarray], np.ndarray],
    k: int = 10,
    relevance: float = 4.0,
    block: int | None = None,
    target: str = "test",
    max_users: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Precision, recall and NDCG at ``k`` under the pinned protocol.

    ``score_users(user_rows)`` returns a ``[len(user_rows), n_movies]`` score matrix.
    ``target="val"`` evaluates on the validation split instead (candidates: movies not
    rated in train), for choosing settings without looking at the test split.
    """
    task = ranking_task(split, target, relevance, max_users, seed)
    return ranking_metrics_many(task, lambda rows: [score_users(rows)], 1, k, block)[0]


def ranking_metrics_many(
    task: RankingTask,
    score_users: Callable[[np.ndarray], list[np.ndarray]],
    n_scores: int,
    k: int = 10,
    block: int | None = None,
) -> list[dict[str, float]]:
    """:func:`ranking_metrics` of ``n_scores`` scorings at once: ``score_users(rows)``
    returns that many score matrices, so candidates scored once can be ranked several
    ways (e.g. one per ranking mix) in a single pass over the users.

    ``block``: users scored at a time (default: ``PAIRS_PER_BLOCK // n_movies``)."""
    users, n_movies = task.users, task.n_movies
    counts = {"users": int(users.size), "users_eligible": task.eligible}
    if users.size == 0:
        empty = {f"precision@{k}": 0.0, f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, **counts}
        return [dict(empty) for _ in range(n_scores)]
    block = block or max(1, PAIRS_PER_BLOCK // max(n_movies, 1))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    cum_discounts = np.concatenate([[0.0], np.cumsum(discounts)])
    # relevant pairs as sorted keys user * n_movies + movie (CSR order is sorted already)
    rel_rows = np.repeat(np.arange(task.relevant.indptr.size - 1), task.relevant.lengths)
    rel_keys = rel_rows * n_movies + task.relevant.indices
    sums = np.zeros((n_scores, 3))  # precision, recall, ndcg
    for start in range(0, users.size, block):
        rows = users[start : start + block]
        seen_pos, seen_movie = _gather(task.seen, rows)
        n_rel = task.relevant.lengths[rows]
        ideal = cum_discounts[np.minimum(n_rel, k)]
        blocks = score_users(rows)
        if len(blocks) != n_scores:
            raise ValueError(f"score_users returned {len(blocks)} score matrices, not {n_scores}")
        for i, block_scores in enumerate(blocks):
            scores = np.array(block_scores, np.float64)
            if scores.shape != (rows.size, n_movies):
                raise ValueError(
                    f"score_users returned shape {scores.shape}, expected {(rows.size, n_movies)}"
                )
            scores[seen_pos, seen_movie] = -np.inf
            if task.candidates is not None:
                scores[:, ~task.candidates] = -np.inf
            top = rank_top_k(scores, k)
            keys = rows[:, None] * n_movies + top
            at = np.minimum(np.searchsorted(rel_keys, keys), rel_keys.size - 1)
            hits = (rel_keys[at] == keys) & np.isfinite(np.take_along_axis(scores, top, 1))
            n_hits = hits.sum(axis=1)
            sums[i, 0] += float((n_hits / k).sum())
            sums[i, 1] += float((n_hits / n_rel).sum())
            sums[i, 2] += float(((hits * discounts[: top.shape[1]]).sum(axis=1) / ideal).sum())
    n = users.size
    return [
        {f"precision@{k}": p / n, f"recall@{k}": r / n, f"ndcg@{k}": g / n, **counts}
        for p, r, g in sums
    ]


def popularity_scores(split: Split) -> np.ndarray:
    """Number of training ratings per movie: the popularity baseline's score."""
    return np.bincount(split.train.movie_idx, minlength=split.vocab.n_movies).astype(np.float64)
