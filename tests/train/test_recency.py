"""The ranking head's recency prior: recent popularity, weighted on validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from movierec.train import recency
from movierec.train.config import TrainConfig
from movierec.train.data._dataset import RatingsData
from movierec.train.pipeline import train_on_split
from movierec.train.refit import refit_on_all_ratings
from movierec.train.split import split_data
from tests.support import TINY


def test_recent_counts_count_the_newest_share_of_the_period() -> None:
    times = np.array([0, 10, 50, 85, 90, 100])
    movies = np.array([0, 1, 1, 2, 2, 0])
    # the newest 15% of 0..100 starts at 85
    assert recency.recent_counts(times, movies, 4).tolist() == [1, 0, 2, 0]
    assert recency.recent_counts(times[:0], movies[:0], 3).tolist() == [0, 0, 0]


def test_the_prior_has_an_rms_of_one() -> None:
    p = recency.prior(np.array([0, 1, 10, 100]))
    assert np.sqrt(np.mean(p.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-6)
    assert np.all(np.diff(p) > 0)
    assert recency.prior(np.zeros(3, np.int64)).tolist() == [0.0, 0.0, 0.0]


def _trending(seed: int = 0) -> RatingsData:
    """Ratings over 1,000 days where, in the last 15%, everyone watches a few new hits:
    the holdout of a time split is best ranked by what is popular now."""
    rng = np.random.default_rng(seed)
    n_users, n = 150, 9000
    users = rng.integers(0, n_users, n)
    days = np.sort(rng.uniform(0, 1000, n))
    old = rng.zipf(1.6, n) % 100  # the old catalogue, heavy-tailed
    hits = 100 + rng.integers(0, 8, n)  # eight new movies
    late = days > 800
    movies = np.where(late & (rng.random(n) < 0.7), hits, old)
    movies[~late & (movies >= 100)] = 0
    frame = pd.DataFrame(
        {
            "user_id": users + 1,
            "movie_id": movies + 1,
            "rating": rng.integers(3, 6, n).astype(np.float32),
            "timestamp": (days * 86400).astype(np.int64),
        }
    ).drop_duplicates(["user_id", "movie_id"], keep="last")
    return RatingsData(frame.reset_index(drop=True), None, None, "test", (1.0, 5.0), "t", "mem")


def test_a_time_split_weights_recent_popularity_and_the_refit_keeps_it() -> None:
    data = _trending()
    split = split_data(data, "time")
    assert set(split.recent) == {"train", "train+val", "all"}
    config = TrainConfig.for_arch("hybrid", quiet=True, threads=1, split="time", **TINY)
    model, _, metrics = train_on_split(config, data, split)
    chosen = metrics["recency"]["chosen"]
    tried = metrics["recency"]["val_ndcg@10"]
    assert chosen > 0 and tried[str(chosen)] > tried["0.0"]
    # the kept model holds the prior of train + validation in its rank bias
    bias = model.movie_table.weight[:, model.mcols["rank_bias"]].squeeze(1)
    want = chosen * recency.prior(split.recent["train+val"])
    torch.testing.assert_close(bias, torch.from_numpy(want))
    # the refit, on every rating, holds that of every rating
    from movierec.train.checkpoint import Checkpoint

    ckpt = Checkpoint(
        model, split, (1.0, 5.0), "t", "test", config.to_dict(), metrics, {}, "0", "now"
    )
    refit = refit_on_all_ratings(config, ckpt, data, start="evaluated", epochs=1)
    m = refit.checkpoint.model
    bias = m.movie_table.weight[:, m.mcols["rank_bias"]].squeeze(1)
    torch.testing.assert_close(bias, torch.from_numpy(chosen * recency.prior(split.recent["all"])))


def test_data_without_times_has_no_prior(synthetic_ml100k) -> None:
    from movierec.train.data import load_ratings

    data = load_ratings(synthetic_ml100k)
    frame = data.ratings.drop(columns="timestamp")
    untimed = RatingsData(frame, None, None, "test", data.rating_scale, "t", "mem")
    split = split_data(untimed)
    assert split.recent is None
    config = TrainConfig.for_arch("hybrid", quiet=True, threads=1, **TINY)
    _, _, metrics = train_on_split(config, untimed, split)
    assert "recency" not in metrics
