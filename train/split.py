"""Splits of the ratings into train / validation / test, on dense indices.

- ``random``: the seed notebook's split, reproduced exactly: ``train_test_split(test_size,
  random_state=seed)``, the rest halved into validation and test (70/15/15 by default).
- ``time``: every rating ordered by time (ties by file order); the oldest 70% train, the
  next 15% validation, the newest 15% test: the honest holdout of a job that predicts
  tomorrow from today.
- ``user-time``: each user's ratings ordered by time; the newest 15% of each user's
  (rounded) test, the 15% before those validation, the rest train: every user is known to
  training, so ranking is measured on every user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from movierec.serve_batch.errors import DataError, UsageError
from movierec.train.config import SPLITS
from movierec.train.data import RatingsData, Vocabulary
from movierec.train.data._dataset import _encode
from movierec.train.recency import recent_counts


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
        """The rows of ``parts`` one after another, in order (one part: itself, no copy of
        its 25M rows)."""
        if len(parts) == 1:
            return parts[0]
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
    #: The validation ratings are in ``train`` too (a refit): no epoch is judged on them.
    val_in_train: bool = False
    #: The test ratings are in ``train`` too (a refit on every rating).
    test_in_train: bool = False
    #: Ratings per movie row in the newest 15% of the period spanned by the training part
    #: (``"train"``), by train + validation (``"train+val"``) and by every rating
    #: (``"all"``): what the ranking head's recency prior is made of
    #: (``movierec.train.recency``); None where the data has no rating times.
    recent: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def every_rating(self) -> list[Part]:
        """The parts that hold every rating of the split once (``train`` alone where it
        holds the others too)."""
        return [self.train] + [
            part
            for part, inside in ((self.val, self.val_in_train), (self.test, self.test_in_train))
            if not inside
        ]


def encode_ids(ratings: pd.DataFrame) -> tuple[Vocabulary, np.ndarray, np.ndarray]:
    """Map raw IDs to consecutive indices over the whole data set (as the notebook did)."""
    user_ids, user_idx = _encode(ratings["user_id"])
    movie_ids, movie_idx = _encode(ratings["movie_id"])
    return Vocabulary(user_ids, movie_ids), user_idx, movie_idx


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


def split_rows(
    data: RatingsData, kind: str = "random", seed: int = 42, test_size: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of ``data.ratings`` in each part (train, validation, test) of the split
    ``kind`` (one of ``SPLITS``, see the module docstring).

    ``test_size`` is the share held out, halved into validation and test. ``seed`` only
    matters to ``random``; the time splits are set by the data alone.
    """
    if kind not in SPLITS:
        raise UsageError(
            f"{{split}} must be one of {', '.join(SPLITS)}, got {kind!r}", params=("split",)
        )
    n = len(data.ratings)
    if kind == "random":
        rows = np.arange(n)
        train_rows, temp_rows = train_test_split(rows, test_size=test_size, random_state=seed)
        val_rows, test_rows = train_test_split(temp_rows, test_size=0.5, random_state=seed)
        return train_rows, val_rows, test_rows
    if not data.has_time:
        raise DataError(
            f"{data.path}: --split {kind} orders the ratings by time, but the data has no "
            "time column; name it with --time-col, or use --split random"
        )
    times = data.ratings["timestamp"].to_numpy()
    if kind == "time":
        return _time_rows(times, test_size)
    return _user_time_rows(times, data.encoded[1], test_size)


def split_data(
    data: RatingsData, kind: str = "random", seed: int = 42, test_size: float = 0.3
) -> Split:
    """The split ``kind`` of ``data`` (:func:`split_rows`) as dense parts, with the recent
    counts of the recency prior where the data has times."""
    vocab, user_idx, movie_idx = data.encoded
    rating = data.ratings["rating"].to_numpy(np.float32)
    rows = split_rows(data, kind, seed, test_size)

    def part(r: np.ndarray) -> Part:
        return Part(user_idx[r], movie_idx[r], rating[r])

    recent = None
    if data.has_time:
        times = data.ratings["timestamp"].to_numpy()
        known = np.concatenate(rows[:2])
        recent = {
            "train": recent_counts(times[rows[0]], movie_idx[rows[0]], vocab.n_movies),
            "train+val": recent_counts(times[known], movie_idx[known], vocab.n_movies),
            "all": recent_counts(times, movie_idx, vocab.n_movies),
        }
    return Split(vocab, *(part(r) for r in rows), recent=recent)


def _time_rows(times: np.ndarray, test_size: float) -> tuple[np.ndarray, ...]:
    """Rows oldest first (ties by file order): train, then validation, then test."""
    order = np.argsort(times, kind="stable")
    n = order.size
    n_val = n_test = int(np.floor(n * test_size / 2 + 0.5))
    n_train = n - n_val - n_test
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def _user_time_rows(
    times: np.ndarray, users: np.ndarray, test_size: float
) -> tuple[np.ndarray, ...]:
    """Per user, oldest first: the newest ``test_size / 2`` of each user's ratings (rounded
    half up) test, as many before those validation, the rest train; each part oldest first."""
    chrono = np.argsort(times, kind="stable")
    by_user = chrono[np.argsort(users[chrono], kind="stable")]  # user, then time, then file
    u = users[by_user]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    counts = np.diff(np.r_[starts, u.size])
    position = np.arange(u.size) - np.repeat(starts, counts)
    count = np.repeat(counts, counts)
    held = np.floor(count * test_size / 2 + 0.5).astype(np.int64)
    label = np.zeros(u.size, dtype=np.int8)  # 0 train, 1 validation, 2 test
    label[position >= count - 2 * held] = 1
    label[position >= count - held] = 2
    of_row = np.empty(u.size, dtype=np.int8)
    of_row[by_user] = label
    in_order = of_row[chrono]
    return tuple(chrono[in_order == i] for i in range(3))


def describe_split(split: Split, kind: str, test_size: float) -> dict:
    """What ``metrics.json`` and the run reports record of a split."""
    out = {
        "kind": kind,
        "test_size": test_size,
        "train": len(split.train),
        "val": len(split.val),
        "test": len(split.test),
    }
    if kind == "random":
        out["how"] = "train_test_split(test_size, random_state=seed), the rest halved"
    elif kind == "time":
        out["how"] = "every rating by time: oldest train, then validation, newest test"
    else:
        out["how"] = "each user's ratings by time: their newest test, the ones before validation"
    return out
