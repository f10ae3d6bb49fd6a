"""The quality benchmark's ranking reference: EASE (Steck 2019), full rank, closed form.

``B = I - P diag(1 / diag P)``, ``P = (X^T X + lam I)^-1`` on a 0/1 matrix of the training
ratings, as the paper fits it; lambda chosen by validation NDCG@10 under the same pinned
protocol as the model (``movierec.train.metrics``). A dense ``movies x movies`` inverse:
fine for ml-100k and ml-latest-small, which is why it is a benchmark and not the model
(``movierec.train.item_item`` is its low-rank, rating-weighted form that scales).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from movierec.train.fallback import fit_fallback
from movierec.train.metrics import ranking_metrics_many, ranking_task
from movierec.train.split import Part, Split

LAMBDAS = (50.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1200.0)


def _binary(parts: list[Part], n_users: int, n_movies: int) -> sp.csr_matrix:
    known = Part.concat(parts)
    x = sp.csr_matrix(
        (np.ones(len(known)), (known.user_idx, known.movie_idx)), shape=(n_users, n_movies)
    )
    x.data[:] = 1.0  # a pair in two parts counts once
    return x


def _scorer(x: sp.csr_matrix, b: np.ndarray):
    return lambda rows: [np.asarray(x[rows] @ b)]


def _weights(x: sp.csr_matrix, lam: float) -> np.ndarray:
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


def ease(split: Split, k: int = 10) -> dict:
    """EASE fit on the training part with lambda chosen on validation: its test metrics,
    and those of the same lambda fit on train + validation.

    Ranked under the model's protocol: on validation the users and movies the training part
    knows, on the test part those train + validation know (what the default model, refit
    on train + validation, knows)."""
    n_users, n_movies = split.vocab.n_users, split.vocab.n_movies
    x = _binary([split.train], n_users, n_movies)
    val_task = ranking_task(split, "val", known=fit_fallback([split.train], n_users, n_movies))
    tried = {}
    for lam in LAMBDAS:
        b = _weights(x, lam)
        tried[lam] = ranking_metrics_many(val_task, _scorer(x, b), 1, k)[0]
    best = max(tried, key=lambda lam: tried[lam][f"ndcg@{k}"])
    test_task = ranking_task(split, "test", known=known_at_test(split))
    out = {"lambda": best, "val_ndcg@10": {str(lam): m[f"ndcg@{k}"] for lam, m in tried.items()}}
    for name, parts in (("train", [split.train]), ("train+val", [split.train, split.val])):
        fit = _binary(parts, n_users, n_movies)
        b = _weights(fit, best)
        found = ranking_metrics_many(test_task, _scorer(fit, b), 1, k)[0]
        out[name] = {c: found[c] for c in (f"precision@{k}", f"recall@{k}", f"ndcg@{k}")}
    return out


def known_at_test(split: Split):
    """What a model refit on train + validation knows: the test protocol of every ranking
    row of the quality tables."""
    return fit_fallback([split.train, split.val], split.vocab.n_users, split.vocab.n_movies)
