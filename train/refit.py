"""Refit: train the evaluated configuration again on every rating, for the model to publish.

The evaluation run (``run_training``) holds 15% + 15% of the ratings out to choose the
epoch count and the rank mix and to measure the model. A nightly job wants a model that
knows every rating it has, so :func:`refit_on_all_ratings` trains the same configuration
once more on all of them, for the evaluation run's best epoch count (no early stopping:
nothing is held out any more), and keeps the rank mix chosen on validation. Its
``metrics.json`` keeps the evaluation run's holdout metrics, the only honest ones, and
says that the model was refit and on how many ratings.

Built on the public :func:`movierec.train.pipeline.train_on_split` alone.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from movierec.serve_batch.errors import DataError
from movierec.train.checkpoint import Checkpoint, package_version, utc_now
from movierec.train.config import TrainConfig
from movierec.train.data import RatingsData
from movierec.train.loop import History
from movierec.train.pipeline import load_data, titles_of, train_on_split
from movierec.train.split import Part, Split

log = logging.getLogger(__name__)

#: Key of ``metrics.json`` that describes the refit (absent for an evaluated model).
REFIT_KEY = "refit"


@dataclass
class RefitResult:
    checkpoint: Checkpoint
    history: History
    metrics: dict


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Only warnings from ``logger`` within the block."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def all_ratings_split(split: Split) -> Split:
    """The evaluation split with every rating in its training part (validation and test
    stay as they were: the training loop still reports them, now in-sample)."""
    everything = Part.concat([split.train, split.val, split.test])
    return Split(split.vocab, everything, split.val, split.test, val_in_train=True)


def refit_on_all_ratings(
    config: TrainConfig, evaluated: Checkpoint, data: RatingsData | None = None
) -> RefitResult:
    """Train ``config`` again on every rating of the evaluated run's data.

    ``evaluated``: the evaluation run's checkpoint (its split, best epoch and chosen rank
    mix). ``data``: the loaded data set, read again from ``config.data`` when omitted; it
    must be the data the evaluation ran on (same fingerprint), else ``DataError``.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    if data is None:
        data = load_data(config)
    if data.fingerprint != evaluated.data_fingerprint:
        raise DataError(
            f"{data.path}: the ratings changed between the evaluation run and the refit "
            f"({evaluated.data_fingerprint} then {data.fingerprint}); run again on data "
            "that is not being written"
        )
    held = evaluated.metrics
    epochs = max(1, int(held.get("best_epoch") or held.get("epochs_run") or config.epochs))
    split = all_ratings_split(evaluated.split)
    # the options set by data size are the evaluation run's, not those of all the ratings
    head = held.get("rank_head") or {}
    refit_config = config.for_data(len(evaluated.split.train)).with_(
        epochs=epochs,
        patience=0,
        refit_validation=False,  # every rating is in the training part already
        item_item_lambda=head.get("lambda_multiple", config.item_item_lambda),
    )
    log.info("refit: %d epochs on all %d ratings", epochs, len(split.train))
    t0 = time.perf_counter()
    with _quiet(logging.getLogger(train_on_split.__module__)):
        # its rank-mix choice and metrics are in-sample now: neither is logged nor kept
        model, history, _in_sample = train_on_split(refit_config, data, split)
    mix = (held.get("rank_mix") or {}).get("chosen")
    if mix is not None and model.config.rank_factors:
        with torch.no_grad():
            model.rank_mix.fill_(float(mix))  # chosen on validation; the refit has none
        log.info("refit: rank mix %g, as chosen on validation by the evaluation run", mix)
    metrics = copy.deepcopy(held)
    metrics[REFIT_KEY] = {
        "refit": True,
        "ratings": len(split.train),
        "epochs": epochs,
        "epoch_kept": history.best_epoch,
        "rank_mix": mix,
        "seconds": round(time.perf_counter() - t0, 3),
        "train_seconds": round(history.seconds, 3),
        "train_mse": history.train_loss,
        "note": (
            "trained again on every rating for the evaluation run's best epoch count; "
            "val and test are the evaluation run's holdout metrics (the refit model has "
            "seen those ratings)"
        ),
    }
    checkpoint = Checkpoint(
        model=model,
        split=split,
        rating_scale=data.rating_scale,
        data_fingerprint=data.fingerprint,
        data_layout=data.layout,
        train_config=refit_config.to_dict(),
        metrics=metrics,
        titles=titles_of(data),
        package_version=package_version(),
        created_at=utc_now(),
        trained_on=("train",),  # every rating is in the training part
        columns=data.columns.to_dict(),
    )
    return RefitResult(checkpoint, history, metrics)
