"""The item-item ranking head: EASE (Steck 2019) in low rank, fit in closed form.

EASE scores movie ``i`` for user ``u`` as ``sum_j x_uj B_ji`` with
``B = I - P diag(1 / diag P)`` and ``P = (X^T X + lam I)^-1``: a regression of every movie
on the others, which ranks better than any embedding model we trained (ml-100k's seed
split: NDCG@10 0.31-0.35 against the BPR head's 0.28). Its ``movies x movies`` inverse
does not fit at our users' scale (60k movies: a 28 GB matrix, cubic time), so ``X^T X``
is replaced by its rank-``R`` truncation ``V S^2 V^T``, from a truncated SVD of the sparse
``X`` (cost: ratings x R per power iteration). Then
``P = V diag(1 / (s^2 + lam)) V^T + (I - V V^T) / lam``, and for every movie the user has
not rated::

    score(u, i) = [X_u V diag(s^2 / (lam (s^2 + lam)))] . [V_i / P_ii]

a dot product of a user row and a movie row of width ``R``: the model's ranking columns,
so export, the catalog graph and the scorer need nothing new. (A rated movie gets another
value, but every ranking excludes the movies a user rated.)

``X`` holds each rating divided by the middle of the rating scale, not a 1 per rating: a
user's 5 says more than their 1 (ml-100k, validation NDCG@10 0.269 against 0.248 for 0/1
entries with the full EASE). The scores are scaled to a root mean square of 1 over every
user x movie pair (exactly, from two ``R x R`` Gram matrices), so the rating's weight in
``rank_score`` means the same whatever ``lam`` and the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from movierec.train.split import Part

#: ``lam`` is chosen on validation among these multiples of the mean diagonal of
#: ``X^T X`` (a movie's squared ratings summed): the scale of ``lam`` follows the data.
LAMBDA_GRID = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)
#: Power iterations of the randomized SVD (scikit-learn's default for a small rank is 7;
#: 6 gave the same validation NDCG@10 on ml-100k to the 4th decimal).
POWER_ITERATIONS = 6


@dataclass(frozen=True)
class Spectrum:
    """The rank-``R`` truncated SVD of the known ratings: ``X ~ U diag(s) V^T``."""

    us: np.ndarray  # [n_users, R]: U diag(s), that is X V
    s: np.ndarray  # [R]
    v: np.ndarray  # [n_movies, R]
    mean_diagonal: float  # mean over movies of sum_u x_um^2 (the scale of lam)


def known_matrix(
    parts: Sequence[Part], n_users: int, n_movies: int, rating_range: tuple[float, float]
) -> sp.csr_matrix:
    """``X``: each known (user, movie) pair's rating over the scale's middle. A pair given
    more than once (in several parts: a refit's training part holds its validation part
    too; or repeated in the data) counts once, with its mean rating.

    Built with 32-bit indices and no sort of its own (rather than ``Part.concat``): at
    scale 0.2 (4.25M ratings) its transient peak was 454 MiB with a sort of 64-bit keys
    to drop repeated pairs, and is 114 MiB so (tracemalloc)."""
    index = np.int32 if max(n_users, n_movies) < 2**31 else np.int64
    users = np.concatenate([p.user_idx for p in parts], dtype=index)
    movies = np.concatenate([p.movie_idx for p in parts], dtype=index)
    ratings = np.concatenate([p.rating for p in parts], dtype=np.float64)
    ratings /= (rating_range[0] + rating_range[1]) / 2.0
    shape = (n_users, n_movies)
    x = sp.csr_matrix((ratings, (users, movies)), shape=shape)  # repeated pairs are summed
    if x.nnz < users.size:  # some pair came more than once: divide by how many times
        counts = sp.csr_matrix((np.ones(users.size), (users, movies)), shape=shape)
        if not np.array_equal(counts.indices, x.indices):
            raise AssertionError("the count matrix's layout differs from the ratings'")
        x.data /= counts.data
    return x


def spectrum(x: sp.csr_matrix, rank: int, seed: int) -> Spectrum:
    """The truncated SVD of ``x`` (randomized, seeded: the same ``x`` gives the same
    factors). ``rank`` is capped by the matrix's size."""
    rank = max(1, min(rank, *x.shape))
    u, s, vt = randomized_svd(x, rank, n_iter=POWER_ITERATIONS, random_state=seed)
    mean_diagonal = float(np.dot(x.data, x.data) / max(x.shape[1], 1))  # sum of x^2 / movies
    return Spectrum(u * s, s, np.ascontiguousarray(vt.T), mean_diagonal)


def head_factors(spec: Spectrum, lam_multiple: float) -> tuple[np.ndarray, np.ndarray]:
    """User and movie rows (float32, width R) whose dot product is the low-rank EASE score
    with ``lam = lam_multiple x mean diagonal``, scaled to unit root mean square."""
    lam = lam_multiple * max(spec.mean_diagonal, 1e-12)
    s2 = spec.s**2
    v = spec.v
    diag_p = (v**2 / (s2 + lam)).sum(1) + (1.0 - (v**2).sum(1)) / lam
    user = spec.us * (s2 / (lam * (s2 + lam)))
    movie = v / diag_p[:, None]
    # mean of (user @ movie.T)^2 over every pair = trace((U^T U)(M^T M)) / (n_u n_m)
    mean_square = float(np.sum((user.T @ user) * (movie.T @ movie))) / max(
        user.shape[0] * movie.shape[0], 1
    )
    if mean_square > 0:
        user = user / np.sqrt(mean_square)
    return user.astype(np.float32), movie.astype(np.float32)
