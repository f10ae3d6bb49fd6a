"""Side information as dense per-row tables, aligned with the embedding rows.

User features (where the release has a users file): age (standardised), gender and
occupation (one-hot). Movie features (where it has a movies file): genres (multi-hot)
and release year (standardised; 0 where unknown). Rows of IDs absent from the side
files are all zeros. The model holds these tables as buffers indexed by the same user
and movie indices, so the exported graph's inputs do not change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movierec.train.split import Vocabulary


def _standardise(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    ok = np.isfinite(values)
    if not ok.any():
        return np.zeros_like(values)
    mean, std = values[ok].mean(), values[ok].std() or 1.0
    return np.where(ok, (values - mean) / std, 0.0)


def _one_hot(values: pd.Series) -> np.ndarray:
    cats = sorted(values.astype(str).unique())
    return (values.astype(str).to_numpy()[:, None] == np.array(cats)[None, :]).astype(float)


def _align(ids: np.ndarray, frame_ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.zeros((len(ids), table.shape[1]), dtype=np.float32)
    pos = pd.Index(frame_ids).get_indexer(ids)
    found = pos >= 0
    out[found] = table[pos[found]]
    return out


def user_features(users: pd.DataFrame | None, vocab: Vocabulary) -> np.ndarray:
    """``[n_users, F_u]`` float32 (``F_u`` = 0 without a users file)."""
    if users is None or users.empty:
        return np.zeros((vocab.n_users, 0), dtype=np.float32)
    users = users.drop_duplicates("user_id")
    parts = [
        _standardise(users["age"].to_numpy())[:, None],
        _one_hot(users["gender"]),
        _one_hot(users["occupation"]),
    ]
    return _align(vocab.user_ids, users["user_id"].to_numpy(), np.hstack(parts))


def movie_features(movies: pd.DataFrame | None, vocab: Vocabulary) -> np.ndarray:
    """``[n_movies, F_m]`` float32 (``F_m`` = 0 without a movies file)."""
    if movies is None or movies.empty:
        return np.zeros((vocab.n_movies, 0), dtype=np.float32)
    movies = movies.drop_duplicates("movie_id")
    genres = movies["genres"].fillna("").astype(str).str.get_dummies(sep="|")
    genres = genres.drop(
        columns=[c for c in genres.columns if c in ("unknown", "(no genres listed)")]
    )
    parts = [genres.to_numpy(dtype=float), _standardise(movies["year"].to_numpy())[:, None]]
    return _align(vocab.movie_ids, movies["movie_id"].to_numpy(), np.hstack(parts))
