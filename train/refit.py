"""Refit: train the evaluated configuration on every rating, for the model to publish.

The evaluation run (``run_training``) holds 15% + 15% of the ratings out to choose the
epoch count, the item-item head's lambda and the rank mix, and to measure the model. A
nightly job wants a model that knows every rating it has, so :func:`refit_on_all_ratings`
trains once more on all of them (no early stopping: nothing is held out any more), keeps
the lambda and the rank mix chosen on validation, and fits the item-item head on every
rating. Its ``metrics.json`` keeps the evaluation run's holdout metrics, the only honest
ones, and says that the model was refit, how, and on how many ratings.

Two ways to refit (``start``):

- ``"evaluated"`` (the default above ``LARGE_DATA_RATINGS`` training ratings): continue
  from the evaluation run's weights (the rows of the
  users and movies it knows; the others' rows are as initialised, never trained) for
  ``CONTINUE_EPOCHS`` epochs: the network has learnt most of what it can from 70% of the
  ratings, and one pass over all of them recovers the quality of a cold refit (README,
  "The night at scale") in a fraction of its time;
- ``"scratch"`` (the default up to it): train a new network from its seeded
  initialisation for the evaluation run's best epoch count (before issue 22, the only
  way).

Neither runs a validation pass, a rank-mix grid or an evaluation: on ratings the model
trains on they would judge nothing.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import torch

from movierec.serve_batch.errors import DataError, UsageError
from movierec.train.checkpoint import Checkpoint, package_version, utc_now
from movierec.train.config import LARGE_DATA_RATINGS, TrainConfig
from movierec.train.data import RatingsData
from movierec.train.loop import History, deterministic_algorithms, fit
from movierec.train.model import RecommenderNet
from movierec.train.pipeline import (
    build_and_fit,
    build_model,
    install_item_item,
    install_recency,
    load_data,
    titles_of,
)
from movierec.train.split import Part, Split

log = logging.getLogger(__name__)

#: Key of ``metrics.json`` that describes the refit (absent for an evaluated model).
REFIT_KEY = "refit"
#: Where a refit starts (``--refit-from``).
REFIT_STARTS = ("evaluated", "scratch")


def default_start(n_train: int) -> str:
    """Where a refit starts by default: from the evaluated weights above
    ``LARGE_DATA_RATINGS`` training ratings, where a refit from scratch costs minutes to
    tens of minutes; from scratch up to it, where it costs seconds and measured a little
    better on the newest ratings (ml-100k: RMSE 1.0095 against 1.0131 after one epoch of
    continuing; bench/refit_holdout.py)."""
    return "evaluated" if n_train > LARGE_DATA_RATINGS else "scratch"


#: Epochs of a refit that continues from the evaluation run's weights.
CONTINUE_EPOCHS = 1


@dataclass
class RefitResult:
    checkpoint: Checkpoint
    history: History
    metrics: dict


def all_ratings_split(split: Split) -> Split:
    """The evaluation split with every rating in its training part (validation and test
    stay as they were, in-sample now: no epoch is judged on them)."""
    everything = Part.concat([split.train, split.val, split.test])
    return Split(
        split.vocab,
        everything,
        split.val,
        split.test,
        val_in_train=True,
        test_in_train=True,
        recent=split.recent,
    )


def continue_fit(
    config: TrainConfig, evaluated: RecommenderNet, data: RatingsData, split: Split
) -> tuple[RecommenderNet, History]:
    """The network of ``config`` for ``split`` holding ``evaluated``'s weights, trained on
    ``split.train`` for ``config.epochs`` (fresh optimiser state).

    The implicit terms' neighbour lists are rebuilt from ``split.train`` (every rating), so
    they are not copied; everything else has the shapes of the evaluated network."""
    model = build_model(config, data, split)
    own = model.state_dict()
    weights = {k: v for k, v in evaluated.state_dict().items() if "_nb_" not in k and k in own}
    wrong = [k for k, v in weights.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"the evaluated network does not fit this split: {wrong[:5]}")
    model.load_state_dict(weights, strict=False)
    history = fit(model, split.train, split.val, config, val_in_train=True)
    return model, history


def refit_on_all_ratings(
    config: TrainConfig,
    evaluated: Checkpoint,
    data: RatingsData | None = None,
    *,
    start: str | None = None,
    epochs: int | None = None,
) -> RefitResult:
    """Train ``config`` on every rating of the evaluated run's data, from where ``start``
    says (``REFIT_STARTS``, see the module docstring; None: :func:`default_start`), for
    ``epochs`` (default: ``CONTINUE_EPOCHS`` when continuing, the evaluation run's best
    epoch count from scratch).

    ``evaluated``: the evaluation run's checkpoint (its split, weights, best epoch, lambda
    and rank mix). ``data``: the loaded data set, read again from ``config.data`` when
    omitted; it must be the data the evaluation ran on (same fingerprint), else
    ``DataError``.
    """
    start = start or default_start(len(evaluated.split.train))
    if start not in REFIT_STARTS:
        raise UsageError(
            f"{{refit_from}} must be one of {', '.join(REFIT_STARTS)}, got {start!r}",
            params=("refit_from",),
        )
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
    best = max(1, int(held.get("best_epoch") or held.get("epochs_run") or config.epochs))
    epochs = epochs or (CONTINUE_EPOCHS if start == "evaluated" else best)
    split = all_ratings_split(evaluated.split)
    head = held.get("rank_head") or {}
    # the options set by data size are the evaluation run's, not those of all the ratings
    refit_config = config.for_data(len(evaluated.split.train)).with_(
        epochs=epochs,
        patience=0,
        refit_validation=False,  # every rating is in the training part already
        item_item_lambda=head.get("lambda_multiple", config.item_item_lambda),
    )
    log.info(
        "refit: %d epoch(s) on all %d ratings, from %s",
        epochs,
        len(split.train),
        "the evaluated weights" if start == "evaluated" else "scratch",
    )
    t0 = time.perf_counter()
    with deterministic_algorithms():
        if start == "evaluated":
            model, history = continue_fit(refit_config, evaluated.model, data, split)
        else:
            model, history = build_and_fit(refit_config, data, split)
        if head.get("kind") == "item-item" and model.config.rank_factors:
            lam = head["lambda_multiple"]
            install_item_item(model, split, [split.train], lam, refit_config.seed)
            install_recency(model, split, "all", (held.get("recency") or {}).get("chosen"))
    mix = (held.get("rank_mix") or {}).get("chosen")
    if mix is not None and model.config.rank_factors:
        with torch.no_grad():
            model.rank_mix.fill_(float(mix))  # chosen on validation; the refit has none
        log.info("refit: rank mix %g, as chosen on validation by the evaluation run", mix)
    metrics = copy.deepcopy(held)
    metrics[REFIT_KEY] = {
        "refit": True,
        "from": start,
        "ratings": len(split.train),
        "epochs": epochs,
        "epoch_kept": history.best_epoch,
        "rank_mix": mix,
        "item_item_fit_on": "every rating" if head.get("kind") == "item-item" else None,
        "seconds": round(time.perf_counter() - t0, 3),
        "train_seconds": round(history.seconds, 3),
        "train_mse": history.train_loss,
        "note": (
            "trained on every rating ("
            + (
                "continuing from the evaluation run's weights"
                if start == "evaluated"
                else "from scratch, for the evaluation run's best epoch count"
            )
            + "); val and test are the evaluation run's holdout metrics (the refit model "
            "has seen those ratings)"
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
