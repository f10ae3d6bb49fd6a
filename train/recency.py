"""Recent popularity: a prior of the ranking head for data that moves with time.

A nightly job ranks for tomorrow. On ml-100k's time split, counting each movie's ratings
over the newest 15% of the training period ranked the holdout better (NDCG@10 0.211)
than EASE (0.162) or the item-item head mixed with the rating (0.178): what people
watch now says more about tomorrow than what they watched years ago.

So each movie gets a term in every user's rank score, ``beta x prior``: ``prior`` is
``log(1 + recent count)`` scaled to an RMS of 1 over the movies (the head's scores have
an RMS of 1 too), and ``beta`` is chosen on validation among ``BETA_GRID``, 0 included, so
data where recency says nothing keeps the head as it was. It sits in the movie table's
rank-bias column, so the exported graphs carry it with no change.
"""

from __future__ import annotations

import numpy as np

#: The newest share of the period that a set of ratings spans whose counts make the prior.
RECENT_SHARE = 0.15
#: Weights of the prior tried on validation.
BETA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def recent_counts(
    times: np.ndarray, movie_idx: np.ndarray, n_movies: int, share: float = RECENT_SHARE
) -> np.ndarray:
    """Ratings per movie row within the newest ``share`` of the period ``times`` span."""
    if times.size == 0:
        return np.zeros(n_movies, np.int64)
    lo, hi = int(times.min()), int(times.max())
    start = hi - share * (hi - lo)
    return np.bincount(movie_idx[times >= start], minlength=n_movies)


def prior(counts: np.ndarray) -> np.ndarray:
    """``log(1 + counts)`` scaled to an RMS of 1 (all zeros where nothing was rated)."""
    values = np.log1p(counts.astype(np.float64))
    rms = float(np.sqrt(np.mean(values**2))) if values.size else 0.0
    return (values / rms if rms > 0 else values).astype(np.float32)
