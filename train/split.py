"""The seed notebook's split, reproduced exactly, on dense indices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Vocabulary:
    """Raw IDs -> dense rows: ``ids[i]`` is the raw ID of row ``i`` (sorted ascending)."""

    user_ids: np.ndarray
    movie_ids: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_movies(self) -> int:
        return len(self.movie_ids)


@dataclass(frozen=True)
class Part:
    """One part of the split as dense arrays (user row, movie row, rating)."""

    user_idx: np.ndarray
    movie_idx: np.ndarray
    rating: np.ndarray

    def __len__(self) -> int:
        return len(self.rating)

    @classmethod
    def concat(cls, parts: Sequence[Part]) -> Part:
        """The rows of ``parts`` one after another, in order."""
        return cls(
            np.concatenate([p.user_idx for p in parts]),
            np.concatenate([p.movie_idx for p in parts]),
            np.concatenate([p.rating for p in parts]),
        )


@dataclass(frozen=True)
class Split:
    vocab: Vocabulary
    train: Part
    val: Part
    test: Part
    #: The validation ratings are in ``train`` too (a refit): validation figures are
    #: in-sample, and the training log says so instead of marking a "best" epoch.
    val_in_train: bool = False


def encode_ids(ratings: pd.DataFrame) -> tuple[Vocabulary, np.ndarray, np.ndarray]:
    """Map raw IDs to consecutive indices over the whole data set (as the notebook did)."""
    user_ids, user_idx = np.unique(ratings["user_id"].to_numpy(np.int64), return_inverse=True)
    movie_ids, movie_idx = np.unique(ratings["movie_id"].to_numpy(np.int64), return_inverse=True)
    return Vocabulary(user_ids, movie_ids), user_idx.astype(np.int64), movie_idx.astype(np.int64)


def split_given_test(
    base: pd.DataFrame, test: pd.DataFrame, seed: int = 42, val_size: float = 0.15
) -> Split:
    """A split whose test part is given (e.g. ml-100k's u1.test); validation is carved
    out of ``base`` with ``train_test_split(val_size, random_state=seed)``."""
    both = pd.concat([base, test], ignore_index=True)
    vocab, user_idx, movie_idx = encode_ids(both)
    rating = both["rating"].to_numpy(np.float32)
    base_rows = np.arange(len(base))
    train_rows, val_rows = train_test_split(base_rows, test_size=val_size, random_state=seed)
    test_rows = np.arange(len(base), len(both))

    def part(r: np.ndarray) -> Part:
        return Part(user_idx[r], movie_idx[r], rating[r])

    return Split(vocab, part(train_rows), part(val_rows), part(test_rows))


def split_ratings(ratings: pd.DataFrame, seed: int = 42, test_size: float = 0.3) -> Split:
    """``train_test_split(test_size, random_state=seed)`` then halve the rest into val/test.

    With the defaults this is the notebook's 70/15/15 split: 70,000 / 15,000 / 15,000 rows
    on ml-100k, the same rows in the same order.
    """
    vocab, user_idx, movie_idx = encode_ids(ratings)
    rating = ratings["rating"].to_numpy(np.float32)
    rows = np.arange(len(ratings))
    train_rows, temp_rows = train_test_split(rows, test_size=test_size, random_state=seed)
    val_rows, test_rows = train_test_split(temp_rows, test_size=0.5, random_state=seed)

    def part(r: np.ndarray) -> Part:
        return Part(user_idx[r], movie_idx[r], rating[r])

    return Split(vocab, part(train_rows), part(val_rows), part(test_rows))
