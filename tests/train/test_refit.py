"""Refit: the evaluated configuration trained again on every rating."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from movierec.serve_batch.errors import DataError
from movierec.train.checkpoint import load_checkpoint
from movierec.train.config import LARGE_DATA_RATINGS, TrainConfig
from movierec.train.loop import predict_part
from movierec.train.metrics import rating_errors
from movierec.train.refit import REFIT_KEY, default_start, refit_on_all_ratings
from tests.support import TINY

#: One torch thread: on a busy 2-core machine the default took 10x longer (13-29 s).
CONFIG = dict(quiet=True, threads=1, **TINY)


@pytest.fixture(scope="module")
def refit(tmp_path_factory, synthetic_ml100k):
    from movierec.train.pipeline import run_training

    config = TrainConfig.for_arch(
        "hybrid", data=synthetic_ml100k, artifacts=tmp_path_factory.mktemp("eval"), **CONFIG
    )
    evaluated = load_checkpoint(run_training(config).artifacts / "checkpoint.pt")
    loop_log, lines = logging.getLogger("movierec.train.loop"), _Lines()
    level = loop_log.level
    loop_log.addHandler(lines)
    loop_log.setLevel(logging.INFO)
    try:
        result = refit_on_all_ratings(config, evaluated)
    finally:
        loop_log.removeHandler(lines)
        loop_log.setLevel(level)
    result.log_lines = lines.lines
    return evaluated, result


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_small_data_refits_from_scratch_for_the_best_epoch_count(refit) -> None:
    evaluated, result = refit
    split = evaluated.split
    n_all = len(split.train) + len(split.val) + len(split.test)
    ckpt = result.checkpoint
    assert len(ckpt.split.train) == n_all
    assert ckpt.split.every_rating() == [ckpt.split.train]  # each rating once
    assert result.metrics[REFIT_KEY]["from"] == "scratch"  # default_start at this size
    assert result.history.epochs_run == evaluated.metrics["best_epoch"]
    assert ckpt.train_config["epochs"] == evaluated.metrics["best_epoch"]
    # the held-out ratings are now learned: the refit model fits them better
    before = rating_errors(predict_part(evaluated.model, split.test), split.test.rating)["rmse"]
    after = rating_errors(predict_part(ckpt.model, split.test), split.test.rating)["rmse"]
    assert after < before


def test_a_refit_continues_from_the_evaluated_weights(synthetic_ml100k, refit) -> None:
    evaluated, scratch = refit
    config = TrainConfig.for_arch("hybrid", data=synthetic_ml100k, **CONFIG)
    result = refit_on_all_ratings(config, evaluated, start="evaluated", epochs=2)
    assert result.history.epochs_run == 2
    assert result.metrics[REFIT_KEY]["from"] == "evaluated"
    # it starts where the evaluation run ended: its first epoch's loss is far below that of
    # a network trained from scratch, and its weights stay near the evaluated ones
    assert result.history.train_loss[0] < 0.8 * scratch.history.train_loss[0]
    for name in ("mlp.0.weight", "user_table.weight"):
        a, b = evaluated.model.state_dict()[name], result.checkpoint.model.state_dict()[name]
        assert float((a - b).norm() / a.norm()) < 0.5, name
    assert default_start(LARGE_DATA_RATINGS + 1) == "evaluated"
    assert default_start(LARGE_DATA_RATINGS) == "scratch"


def test_the_refit_fits_the_item_item_head_on_every_rating(refit) -> None:
    """The head's rank columns are the closed form of all ratings, with the evaluation
    run's lambda: unlike the evaluated model's, fit on train + validation."""
    import torch

    from movierec.train import item_item
    from movierec.train.head_fit import spectrum

    evaluated, result = refit
    ckpt = result.checkpoint
    lam = evaluated.metrics["rank_head"]["lambda_multiple"]
    c = ckpt.model.config
    scale = (c.rating_min, c.rating_max)
    spec = spectrum(
        ckpt.split, [ckpt.split.train], c.rank_factors, scale, ckpt.train_config["seed"]
    )
    user, movie = item_item.head_factors(spec, lam)
    uc = ckpt.model.ucols["rank"]
    torch.testing.assert_close(ckpt.model.user_table.weight[:, uc], torch.from_numpy(user))
    assert result.metrics[REFIT_KEY]["item_item_fit_on"] == "every rating"


def test_refit_keeps_the_holdout_metrics_and_the_rank_mix(refit) -> None:
    evaluated, result = refit
    m = result.metrics
    for key in ("val", "test", "baselines", "best_epoch", "rank_mix"):
        assert m[key] == evaluated.metrics[key], key
    info = m[REFIT_KEY]
    assert info["refit"] is True
    assert info["ratings"] == len(result.checkpoint.split.train)
    assert info["epochs"] == evaluated.metrics["best_epoch"]
    chosen = evaluated.metrics["rank_mix"]["chosen"]
    assert info["rank_mix"] == chosen
    assert float(result.checkpoint.model.rank_mix) == pytest.approx(chosen)
    assert result.checkpoint.metrics is m


def test_refit_refuses_data_that_changed(refit, synthetic_ml100k) -> None:
    from movierec.train.data import load_movielens

    evaluated, _ = refit
    data = load_movielens(synthetic_ml100k)
    changed = dataclasses.replace(data, fingerprint=data.fingerprint + "x")
    config = TrainConfig.for_arch("hybrid", data=synthetic_ml100k, **CONFIG)
    with pytest.raises(DataError, match="ratings changed between the evaluation run and the"):
        refit_on_all_ratings(config, evaluated, changed)
    assert np.isfinite(float(evaluated.model.rank_mix))


def test_the_refit_judges_no_epoch_on_ratings_it_trains_on(refit) -> None:
    """The refit trains on the validation ratings: no validation pass, no epoch called the
    best, the last epoch kept."""
    _, result = refit
    epochs = [line for line in result.log_lines if line.startswith("epoch ")]
    assert len(epochs) == result.history.epochs_run
    assert all("val_rmse" not in line and "*best" not in line for line in epochs)
    assert result.history.val_rmse == []
    assert result.history.best_epoch == result.history.epochs_run
