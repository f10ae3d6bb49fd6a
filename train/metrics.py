"""Rating error and top-k ranking metrics, with the ranking protocol pinned.

Protocol: for each test user, the candidates are all movies the user did not rate in
train or validation; relevant items are that user's test ratings >= ``relevance``;
users with no relevant item are left out. Ties are broken by movie index ascending.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from movierec.train.split import Split


def rating_errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE, MSE and MAE of predicted against true ratings."""
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    mse = float(np.mean(err**2))
    return {"rmse": float(np.sqrt(mse)), "mse": mse, "mae": float(np.mean(np.abs(err)))}


def rank_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` best scores per row, best first, ties by index."""
    k = min(k, scores.shape[1])
    # Stable sort of the negated scores keeps lower indices first among equal scores.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def ranking_metrics(
    split: Split,
    score_users: Callable[[np.ndarray], np.ndarray],
    k: int = 10,
    relevance: float = 4.0,
    block: int = 256,
    target: str = "test",
) -> dict[str, float]:
    """Precision, recall and NDCG at ``k`` under the pinned protocol.

    ``score_users(user_rows)`` returns a ``[len(user_rows), n_movies]`` score matrix.
    ``target="val"`` evaluates on the validation split instead (candidates: movies not
    rated in train), for choosing settings without looking at the test split.
    """
    return ranking_metrics_many(
        split, lambda rows: [score_users(rows)], 1, k, relevance, block, target
    )[0]


def ranking_metrics_many(
    split: Split,
    score_users: Callable[[np.ndarray], list[np.ndarray]],
    n_scores: int,
    k: int = 10,
    relevance: float = 4.0,
    block: int = 256,
    target: str = "test",
) -> list[dict[str, float]]:
    """:func:`ranking_metrics` of ``n_scores`` scorings at once: ``score_users(rows)``
    returns that many score matrices, so candidates scored once can be ranked several
    ways (e.g. one per ranking mix) in a single pass over the users."""
    n_movies = split.vocab.n_movies
    test = split.test if target == "test" else split.val
    seen_parts = [split.train, split.val] if target == "test" else [split.train]
    relevant = test.rating >= relevance
    users = np.unique(test.user_idx[relevant])
    if len(users) == 0:
        empty = {f"precision@{k}": 0.0, f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, "users": 0}
        return [dict(empty) for _ in range(n_scores)]
    seen_u = np.concatenate([p.user_idx for p in seen_parts])
    seen_m = np.concatenate([p.movie_idx for p in seen_parts])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    sums = np.zeros((n_scores, 3))  # precision, recall, ndcg
    for start in range(0, len(users), block):
        rows = users[start : start + block]
        pos = {u: i for i, u in enumerate(rows)}
        in_block = np.isin(seen_u, rows)
        seen_rows = [pos[u] for u in seen_u[in_block]]
        rel = np.zeros((len(rows), n_movies), dtype=bool)
        rel_mask = relevant & np.isin(test.user_idx, rows)
        rel[[pos[u] for u in test.user_idx[rel_mask]], test.movie_idx[rel_mask]] = True
        n_rel = rel.sum(axis=1)
        ideal = np.array([discounts[: min(n, k)].sum() for n in n_rel])
        blocks = score_users(rows)
        if len(blocks) != n_scores:
            raise ValueError(f"score_users returned {len(blocks)} score matrices, not {n_scores}")
        for i, block_scores in enumerate(blocks):
            scores = np.array(block_scores, np.float64)
            scores[seen_rows, seen_m[in_block]] = -np.inf
            top = rank_top_k(scores, k)
            hits = np.take_along_axis(rel, top, axis=1)
            sums[i, 0] += float((hits.sum(axis=1) / k).sum())
            sums[i, 1] += float((hits.sum(axis=1) / n_rel).sum())
            sums[i, 2] += float(((hits * discounts[: top.shape[1]]).sum(axis=1) / ideal).sum())
    n = len(users)
    return [
        {
            f"precision@{k}": p / n,
            f"recall@{k}": r / n,
            f"ndcg@{k}": g / n,
            "users": int(n),
        }
        for p, r, g in sums
    ]


def popularity_scores(split: Split) -> np.ndarray:
    """Number of training ratings per movie: the popularity baseline's score."""
    return np.bincount(split.train.movie_idx, minlength=split.vocab.n_movies).astype(np.float64)
