from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from movierec.train.data import load_movielens
from movierec.train.split import encode_ids, split_data, split_ratings, split_rows
from tests.support import real_data
from tests.synthetic import make_ratings


def test_encode_ids_is_dense_and_sorted():
    ratings = pd.DataFrame(
        {"user_id": [30, 10, 20, 10], "movie_id": [7, 7, 3, 9], "rating": [1.0, 2, 3, 4]}
    )
    vocab, u, m = encode_ids(ratings)
    assert vocab.user_ids.tolist() == [10, 20, 30]
    assert u.tolist() == [2, 0, 1, 0]
    assert vocab.movie_ids[m].tolist() == [7, 7, 3, 9]


def test_split_is_the_notebooks_two_train_test_splits():
    data = make_ratings(n_users=30, n_movies=40, n_ratings=1000, seed=3)
    split = split_ratings(data.ratings, seed=42)
    train, temp = train_test_split(data.ratings, test_size=0.3, random_state=42)
    val, test = train_test_split(temp, test_size=0.5, random_state=42)
    for part, frame in ((split.train, train), (split.val, val), (split.test, test)):
        assert split.vocab.user_ids[part.user_idx].tolist() == frame["user_id"].tolist()
        assert split.vocab.movie_ids[part.movie_idx].tolist() == frame["movie_id"].tolist()
        assert part.rating.tolist() == frame["rating"].tolist()


def test_split_is_reproducible_and_seed_dependent():
    ratings = make_ratings(n_users=30, n_movies=40, n_ratings=1000, seed=3).ratings
    a, b = split_ratings(ratings, seed=7), split_ratings(ratings, seed=7)
    c = split_ratings(ratings, seed=8)
    assert np.array_equal(a.test.user_idx, b.test.user_idx)
    assert np.array_equal(a.test.movie_idx, b.test.movie_idx)
    assert not np.array_equal(a.test.user_idx, c.test.user_idx)
    assert (len(a.train), len(a.val), len(a.test)) == (700, 150, 150)


@pytest.mark.realdata
def test_real_ml100k_split_sizes():
    data = load_movielens(real_data("ml-100k"))
    split = split_ratings(data.ratings)
    assert (len(split.train), len(split.val), len(split.test)) == (70_000, 15_000, 15_000)
    assert (split.vocab.n_users, split.vocab.n_movies) == (943, 1682)


def _timed(n_users=30, n_movies=40, n_ratings=1000, seed=3):
    from movierec.train.data._dataset import RatingsData

    data = make_ratings(n_users=n_users, n_movies=n_movies, n_ratings=n_ratings, seed=seed)
    frame = data.ratings.copy()
    # shuffle the times so that file order and time order differ, with ties
    rng = np.random.default_rng(seed)
    frame["timestamp"] = rng.integers(0, n_ratings // 3, len(frame))
    return RatingsData(frame, None, None, "test", (1.0, 5.0), "test:0", Path("mem"))


def test_the_random_split_of_split_data_is_the_notebooks():
    data = _timed()
    a = split_data(data, "random", seed=42)
    b = split_ratings(data.ratings, seed=42)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, name).user_idx, getattr(b, name).user_idx)
        np.testing.assert_array_equal(getattr(a, name).movie_idx, getattr(b, name).movie_idx)


def test_the_time_split_holds_out_the_newest_ratings():
    data = _timed()
    train, val, test = split_rows(data, "time")
    times = data.ratings["timestamp"].to_numpy()
    assert (train.size, val.size, test.size) == (700, 150, 150)
    assert times[train].max() <= times[val].min() and times[val].max() <= times[test].min()
    # ties by file order, each part oldest first; the seed plays no part
    for rows in (train, val, test):
        assert np.all(np.diff(times[rows]) >= 0)
        same = np.flatnonzero(np.diff(times[rows]) == 0)
        assert np.all(rows[same] < rows[same + 1])
    again = split_rows(data, "time", seed=7)
    assert all(np.array_equal(x, y) for x, y in zip((train, val, test), again, strict=True))


def test_the_user_time_split_holds_out_each_users_newest():
    data = _timed()
    train, val, test = split_rows(data, "user-time")
    users = data.encoded[1]
    times = data.ratings["timestamp"].to_numpy()
    assert train.size + val.size + test.size == len(times)
    assert set(users[train]) == set(users)  # every user is known to training
    for user in np.unique(users):
        own = [rows[users[rows] == user] for rows in (train, val, test)]
        count = sum(r.size for r in own)
        held = int(np.floor(count * 0.15 + 0.5))
        assert (own[1].size, own[2].size) == (held, held)
        order = np.lexsort((np.concatenate(own), times[np.concatenate(own)]))
        assert np.array_equal(order, np.arange(count))  # train < validation < test in time


def test_a_time_split_needs_times():
    from movierec.serve_batch.errors import DataError

    data = _timed()
    untimed = type(data)(
        data.ratings.drop(columns="timestamp"), None, None, "test", (1.0, 5.0), "t", Path("mem")
    )
    with pytest.raises(DataError, match="--split time orders the ratings by time"):
        split_rows(untimed, "time")
