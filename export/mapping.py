"""The JSON ID mapping written beside ``model.onnx`` (layout: ``movierec.serve_batch.contract``)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from movierec.serve_batch import contract
from movierec.train.checkpoint import Checkpoint

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


def build_mapping(ckpt: Checkpoint) -> dict:
    """Raw IDs -> embedding rows, the rating scale, fallback means and titles."""
    vocab, train = ckpt.split.vocab, ckpt.split.train
    mean = float(np.mean(train.rating, dtype=np.float64))
    user_mean = damped_means(train.user_idx, train.rating, vocab.n_users, mean, FALLBACK_DAMPING)
    movie_mean = damped_means(train.movie_idx, train.rating, vocab.n_movies, mean, FALLBACK_DAMPING)
    users = [str(int(i)) for i in vocab.user_ids]
    movies = [str(int(i)) for i in vocab.movie_ids]
    titles = {key: ckpt.titles[int(key)] for key in movies if int(key) in ckpt.titles}
    return {
        contract.MAPPING_FORMAT_VERSION: contract.FORMAT_VERSION,
        contract.MAPPING_RATING_SCALE: {"min": ckpt.rating_scale[0], "max": ckpt.rating_scale[1]},
        contract.MAPPING_USER_INDEX: {key: row for row, key in enumerate(users)},
        contract.MAPPING_MOVIE_INDEX: {key: row for row, key in enumerate(movies)},
        contract.MAPPING_FALLBACK: {
            contract.FALLBACK_GLOBAL_MEAN: round(mean, 6),
            contract.FALLBACK_USER_MEAN: {
                k: round(float(v), 6) for k, v in zip(users, user_mean, strict=True)
            },
            contract.FALLBACK_MOVIE_MEAN: {
                k: round(float(v), 6) for k, v in zip(movies, movie_mean, strict=True)
            },
            contract.FALLBACK_DAMPING: FALLBACK_DAMPING,
        },
        contract.MAPPING_TITLES: titles,
    }


def encode_mapping(mapping: dict) -> tuple[bytes, str]:
    """The exact bytes written to ``id_mapping.json`` and their SHA-256 (hex)."""
    data = (json.dumps(mapping, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    return data, hashlib.sha256(data).hexdigest()
