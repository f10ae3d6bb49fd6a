"""The item-item ranking head: low-rank EASE in closed form, installed as rank columns."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from movierec.serve_batch import contract
from movierec.serve_batch.errors import UsageError
from movierec.train import item_item
from movierec.train.checkpoint import load_checkpoint
from movierec.train.config import TrainConfig
from movierec.train.model import ModelConfig, RecommenderNet
from movierec.train.split import Part


def _ratings(n_users: int, n_movies: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_movies)) < density
    values = np.where(mask, rng.integers(1, 6, (n_users, n_movies)) / 3.0, 0.0)
    return sp.csr_matrix(values)


def _full_ease(x: sp.csr_matrix, lam: float) -> np.ndarray:
    gram = (x.T @ x).toarray() + lam * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return np.asarray(x @ b)


def test_full_rank_head_is_ease_on_every_unrated_movie():
    """At full rank the closed form is exactly EASE (Steck 2019) on the movies a user has
    not rated (the only ones any ranking considers), up to the unit-RMS scale."""
    x = _ratings(40, 12, 0.3, seed=0)
    spec = item_item.spectrum(x, rank=12, seed=0)
    lam_multiple = 3.0
    user, movie = item_item.head_factors(spec, lam_multiple)
    got = user.astype(np.float64) @ movie.T.astype(np.float64)
    want = _full_ease(x, lam_multiple * spec.mean_diagonal)
    unrated = x.toarray() == 0
    got_u, want_u = got[unrated], want[unrated]
    scale = float(got_u @ want_u / (want_u @ want_u))
    assert scale > 0
    np.testing.assert_allclose(got_u, scale * want_u, atol=1e-5 * np.abs(got_u).max())
    # the scale: a root mean square of 1 over every user x movie pair
    assert np.sqrt(np.mean(got**2)) == pytest.approx(1.0, rel=1e-5)


def test_low_rank_head_ranks_like_ease():
    """Truncated, the head keeps EASE's ranking of each user's unrated movies close: most
    of each user's EASE top 5 stays in the low-rank top 5."""
    x = _ratings(200, 60, 0.15, seed=1)
    spec = item_item.spectrum(x, rank=30, seed=0)
    user, movie = item_item.head_factors(spec, 2.0)
    got = user @ movie.T
    want = _full_ease(x, 2.0 * spec.mean_diagonal)
    rated = x.toarray() != 0
    got[rated] = want[rated] = -np.inf
    top = lambda s: np.argsort(-s, axis=1)[:, :5]  # noqa: E731
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top(got), top(want), strict=True)])
    assert overlap > 0.7


def test_same_seed_same_factors_and_pairs_counted_once():
    parts = [
        Part(np.array([0, 1, 2, 2]), np.array([1, 0, 2, 3]), np.array([5.0, 3.0, 1.0, 4.0])),
        Part(np.array([2, 3]), np.array([3, 0]), np.array([4.0, 2.0])),  # (2, 3) again
    ]
    x = item_item.known_matrix(parts, 4, 4, (1.0, 5.0))
    assert x.nnz == 5
    assert x[2, 3] == pytest.approx(4.0 / 3.0) and x[0, 1] == pytest.approx(5.0 / 3.0)
    assert x[3, 0] == pytest.approx(2.0 / 3.0) and x[1, 1] == 0.0
    # a pair rated twice differently (repeated in the data) counts once, with its mean
    twice = Part(np.array([0, 0, 1]), np.array([2, 2, 0]), np.array([5.0, 2.0, 3.0]))
    y = item_item.known_matrix([twice], 2, 3, (1.0, 5.0))
    assert y.nnz == 2 and y[0, 2] == pytest.approx(3.5 / 3.0)
    # without repeats, nothing is divided
    once = item_item.known_matrix(parts[:1], 4, 4, (1.0, 5.0))
    assert once.nnz == 4 and once[0, 1] == pytest.approx(5.0 / 3.0)
    a = item_item.head_factors(item_item.spectrum(x, 2, seed=7), 4.0)
    b = item_item.head_factors(item_item.spectrum(x, 2, seed=7), 4.0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_set_rank_factors_makes_the_rank_score_the_factors_dot_product():
    """Side information and implicit sums feed every column of a row; installing the head
    zeroes their rank columns so the effective rows (what export reads) carry it as is."""
    config = ModelConfig(
        n_users=5,
        n_movies=6,
        embedding_dim=4,
        hidden=(8,),
        factors=3,
        rank_factors=2,
        n_user_features=2,
        n_movie_features=3,
        implicit_nnz=4,
        implicit_movie_nnz=4,
    )
    torch.manual_seed(0)
    model = RecommenderNet(config)
    model.set_side_features(torch.rand(5, 2), torch.rand(6, 3))
    model.set_implicit(torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 4]))
    with torch.no_grad():  # make every contribution to the rank columns non-zero first
        for part in (model.user_side, model.movie_side, model.user_implicit, model.movie_implicit):
            part.weight.normal_()
    user, movie = torch.randn(5, 2), torch.randn(6, 2)
    model.set_rank_factors(user, movie)
    model.rank_mix.fill_(0.0)
    model.eval()
    u = torch.arange(5).repeat_interleave(6)
    m = torch.arange(6).repeat(5)
    with torch.no_grad():
        _, rank = model.predict_with_rank(u, m)
        users, movies = model.effective_tables()
    torch.testing.assert_close(rank, (user[u] * movie[m]).sum(-1))
    torch.testing.assert_close(users[:, model.ucols["rank"]], user)
    with pytest.raises(ValueError, match="do not fit"):
        model.set_rank_factors(torch.zeros(5, 3), movie)


def test_trained_model_records_its_head_and_refit(trained_artifacts):
    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    metrics = json.loads((trained_artifacts / contract.METRICS_FILE).read_text())
    head = metrics["rank_head"]
    assert head["kind"] == "item-item" and head["fit_on"] == "train + validation"
    assert head["lambda_multiple"] in item_item.LAMBDA_GRID
    assert set(head["val_ndcg@10"]) == {f"{lam:g}" for lam in item_item.LAMBDA_GRID}
    assert head["val_ndcg@10"][f"{head['lambda_multiple']:g}"] == max(head["val_ndcg@10"].values())
    split = ckpt.split
    refit = metrics["refit_validation"]
    assert refit["ratings"] == len(split.train) + len(split.val)
    assert refit["epochs"] == metrics["best_epoch"]
    # the kept model's implicit lists are those of train + validation (no cap binds here)
    assert ckpt.model.config.implicit_nnz == len(split.train) + len(split.val)
    # its rank columns are the head fit on train + validation, refit on the same ratings
    known = item_item.known_matrix(
        [split.train, split.val], split.vocab.n_users, split.vocab.n_movies, (1.0, 5.0)
    )
    user, movie = item_item.head_factors(
        item_item.spectrum(known, ckpt.model.config.rank_factors, ckpt.train_config["seed"]),
        head["lambda_multiple"],
    )
    with torch.no_grad():
        users, movies = ckpt.model.effective_tables()
    np.testing.assert_allclose(users[:, ckpt.model.ucols["rank"]].numpy(), user, atol=1e-6)
    np.testing.assert_allclose(movies[:, ckpt.model.mcols["rank"]].numpy(), movie, atol=1e-6)


def test_bad_head_options_are_refused():
    with pytest.raises(UsageError, match="rank_head must be one of item-item, bpr"):
        TrainConfig.for_arch("hybrid", rank_head="softmax")
    with pytest.raises(UsageError, match="item_item_lambda must be positive"):
        TrainConfig.for_arch("hybrid", item_item_lambda=0.0)


def test_bpr_head_without_refit_trains_on_the_training_part_only(synthetic_ml100k, tmp_path):
    from movierec.train.pipeline import run_training
    from tests.support import TINY

    config = TrainConfig.for_arch(
        "hybrid",
        data=synthetic_ml100k,
        artifacts=tmp_path,
        quiet=True,
        rank_head="bpr",
        refit_validation=False,
        **{**TINY, "epochs": 2},
    )
    result = run_training(config)
    assert result.metrics["rank_head"] == {"kind": "bpr"}
    assert "refit_validation" not in result.metrics
    split = result.checkpoint.split
    assert result.checkpoint.model.config.implicit_nnz == len(split.train)
    assert result.metrics["config"]["rank_head"] == "bpr"


def test_refit_validation_and_ema_follow_the_data_size():
    from movierec.train.config import LARGE_DATA_RATINGS

    config = TrainConfig.for_arch("hybrid")
    small, large = config.for_data(LARGE_DATA_RATINGS), config.for_data(LARGE_DATA_RATINGS + 1)
    assert (small.refit_validation, small.ema) == (True, 0.97)
    assert (large.refit_validation, large.ema) == (False, 0.0)
    forced = TrainConfig.for_arch("hybrid", refit_validation=True, ema=0.5)
    assert forced.for_data(LARGE_DATA_RATINGS + 1).refit_validation is True
    assert forced.for_data(LARGE_DATA_RATINGS + 1).ema == 0.5


def test_the_head_fit_beside_the_training_gives_the_same_model(tmp_path, synthetic_ml100k):
    """``parallel_head``: the head's SVDs and grid on a thread of their own, BLAS on one
    thread either way: the same head, lambda, rank mix and metrics to the last bit."""
    from movierec.train.config import TrainConfig
    from movierec.train.data import load_ratings
    from movierec.train.pipeline import train_on_split
    from movierec.train.split import split_data
    from tests.support import TINY

    data = load_ratings(synthetic_ml100k)
    split = split_data(data)
    runs = []
    for parallel in (True, False):
        config = TrainConfig.for_arch(
            "hybrid", quiet=True, threads=1, parallel_head=parallel, **TINY
        )
        runs.append(train_on_split(config, data, split))
    (a, _, ma), (b, _, mb) = runs
    for key in ("rank_head", "rank_mix", "test", "val"):
        assert ma[key] == mb[key], key
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name
