"""What a model knows, and the fallback for what it does not: defined once for training,
evaluation and the exported ID mapping.

A model knows the users and movies that have a rating in the parts it was trained on.
The rest have embedding rows (the vocabulary covers the whole data) that training never
moved, so their pairs are not scored by the network: the exported mapping leaves them
out, and ``rec-score`` (like the evaluation here) gives their pairs the fallback:

- unknown user, known movie: the movie's damped mean rating;
- known user, unknown movie: the user's damped mean rating;
- both unknown: the global mean.

With a time-based split these are the new users and movies of the holdout period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from movierec.train.split import Part

#: Pseudo-count pulling a user's or movie's mean rating towards the global mean, so a
#: movie with one 5-star rating does not get a fallback of 5.
FALLBACK_DAMPING = 5.0


def damped_means(
    idx: np.ndarray, rating: np.ndarray, n: int, mean: float, damping: float
) -> np.ndarray:
    """Per-row ``(sum + damping * mean) / (count + damping)`` over training ratings."""
    sums = np.bincount(idx, weights=rating.astype(np.float64), minlength=n)
    counts = np.bincount(idx, minlength=n)
    return (sums + damping * mean) / (counts + damping)


@dataclass(frozen=True, eq=False)  # holds arrays
class Fallback:
    """Which users and movies a model knows, and the damped means of the fallback."""

    known_users: np.ndarray  # bool per user row
    known_movies: np.ndarray  # bool per movie row
    user_mean: np.ndarray  # float64 per user row
    movie_mean: np.ndarray  # float64 per movie row
    global_mean: float
    damping: float = FALLBACK_DAMPING

    def known(self, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
        """True where both the user and the movie of a pair are known."""
        return self.known_users[user_idx] & self.known_movies[movie_idx]

    def predict(self, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
        """The fallback rating of each pair (meant for pairs :meth:`known` says are not)."""
        ku, km = self.known_users[user_idx], self.known_movies[movie_idx]
        out = np.full(user_idx.size, self.global_mean, dtype=np.float64)
        only_movie = ~ku & km
        only_user = ku & ~km
        out[only_movie] = self.movie_mean[movie_idx[only_movie]]
        out[only_user] = self.user_mean[user_idx[only_user]]
        return out


def fit_fallback(
    parts: Sequence[Part], n_users: int, n_movies: int, damping: float = FALLBACK_DAMPING
) -> Fallback:
    """The fallback of a model trained on ``parts``."""
    trained = Part.concat(list(parts))
    mean = float(np.mean(trained.rating, dtype=np.float64)) if len(trained) else 0.0
    return Fallback(
        known_users=np.bincount(trained.user_idx, minlength=n_users) > 0,
        known_movies=np.bincount(trained.movie_idx, minlength=n_movies) > 0,
        user_mean=damped_means(trained.user_idx, trained.rating, n_users, mean, damping),
        movie_mean=damped_means(trained.movie_idx, trained.rating, n_movies, mean, damping),
        global_mean=mean,
        damping=damping,
    )
