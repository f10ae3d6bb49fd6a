"""The scale benchmark's data generator: MovieLens-25M's shape, deterministic per seed."""

import json

import numpy as np
import pytest

from bench.make_synthetic import FULL_MOVIES, FULL_RATINGS, FULL_USERS, main, sizes
from movierec.train.data import load_movielens


def test_sizes_follow_movielens_25m():
    assert sizes(1.0) == (FULL_USERS, FULL_MOVIES, FULL_RATINGS) == (162_541, 59_047, 25_000_095)
    assert sizes(0.2) == (32_508, 26_407, 5_000_019)  # movies grow as sqrt(scale)


def test_generated_data_loads_with_the_planned_shape(tmp_path):
    assert main([str(tmp_path / "a"), "--scale", "0.0005", "--seed", "3"]) == 0
    info = json.loads((tmp_path / "a/generator.json").read_text())
    n_users, n_movies, n_ratings = sizes(0.0005)
    data = load_movielens(tmp_path / "a")
    r = data.ratings
    assert data.layout == "csv" and data.rating_scale == (0.5, 5.0)
    assert len(r) == n_ratings == info["ratings"]
    assert r["user_id"].nunique() == n_users == info["users"]
    assert r[["user_id", "movie_id"]].duplicated().sum() == 0
    assert r.groupby("user_id").size().min() >= 20
    assert set(np.unique(r["rating"] * 2)) <= set(range(1, 11))
    assert set(r["movie_id"]) <= set(data.movies["movie_id"]) and len(data.movies) == n_movies
    # heavy tails: the busiest user and the most popular movie far above the median
    per_user, per_movie = r.groupby("user_id").size(), r.groupby("movie_id").size()
    assert per_user.max() > 5 * per_user.median()
    assert per_movie.max() > 5 * per_movie.median()
    # the noise-free model's RMSE is the limit: below the ratings' spread, above 0
    assert 0.5 < info["noise_free_rmse"] < float(r["rating"].std())


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        main([str(tmp_path / name), "--scale", "0.0003", "--seed", str(seed)])
    a, b, c = ((tmp_path / n / "ratings.csv").read_bytes() for n in "abc")
    assert a == b and a != c
    assert (tmp_path / "a/movies.csv").read_bytes() == (tmp_path / "b/movies.csv").read_bytes()


def test_bad_scale_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as err:
        main([str(tmp_path), "--scale", "0"])
    assert err.value.code == 2
