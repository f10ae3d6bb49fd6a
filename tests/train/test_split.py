import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from movierec.train.data import load_movielens
from movierec.train.split import encode_ids, split_ratings
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
