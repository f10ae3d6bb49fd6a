"""The training loop: batches sliced from tensors, early stopping on validation RMSE."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from movierec.train.config import TrainConfig
from movierec.train.model import RecommenderNet
from movierec.train.optim import RowAdam
from movierec.train.split import Part

log = logging.getLogger(__name__)


@dataclass
class History:
    train_loss: list[float]
    val_rmse: list[float]
    best_epoch: int
    seconds: float

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)


def as_tensors(part: Part) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(np.ascontiguousarray(part.user_idx, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(part.movie_idx, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(part.rating, dtype=np.float32)),
    )


@torch.no_grad()
def predict_part(model: RecommenderNet, part: Part, batch: int = 65536) -> np.ndarray:
    """Clipped predictions for every row of ``part``, in order."""
    model.eval()
    u, m, _ = as_tensors(part)
    out = [model.predict(u[i : i + batch], m[i : i + batch]) for i in range(0, len(u), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def bpr_loss_from_rows(
    model: RecommenderNet, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
) -> torch.Tensor:
    """Bayesian personalised ranking: a movie the user rated above a random one."""
    diff = model.rank_logits_from_rows(u, pos) - model.rank_logits_from_rows(u, neg)
    return -torch.nn.functional.logsigmoid(diff).mean()


def step_objective(
    model: RecommenderNet,
    config: TrainConfig,
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
    negatives: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(objective, rating MSE)`` of one batch.

    Each distinct user and movie of the batch (negatives included) is gathered once and
    its implicit sum computed once, then shared by the rating loss, the penalty and the
    BPR loss. The penalty is the mean squared norm of the table rows per rating
    (regularisation per occurrence): frequent users and movies are regularised more
    often, as in SGD matrix factorisation, instead of every row decaying at every step
    as weight decay does."""
    n = len(users)
    user = model.batch_rows("user", users)
    movie = model.batch_rows(
        "movie", movies if negatives is None else torch.cat([movies, negatives])
    )
    u, m = user.rows, movie.rows
    pred = model.rating_from_logits(model.logits_from_rows(u, m[:n]))
    loss = torch.nn.functional.mse_loss(pred, ratings)
    objective = loss
    if config.reg:
        objective = objective + config.reg * (user.table_sq + movie.table_sq[:n]).mean()
    if config.weight_decay:
        # weight decay of the implicit vectors this step used, applied lazily: the gradient
        # of (wd / 2) * |y|^2 is the wd * y that Adam's weight decay adds
        decay = user.implicit_sq + movie.implicit_sq
        objective = objective + 0.5 * config.weight_decay * decay
    if negatives is not None:
        objective = objective + config.rank_weight * bpr_loss_from_rows(model, u, m[:n], m[n:])
    return objective, loss


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Within this block torch uses its deterministic kernels, so that a fixed seed gives
    the same weights on every run: with 2 threads some CPU kernels otherwise reorder float
    sums (ml-100k's validation RMSE moved in the 4th decimal between identical runs).
    Measured no slower on the default model. The caller's setting is restored after."""
    was = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)


def make_adam(groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel where this torch has it (about 2x fewer seconds per step
    for small batches on CPU), the reference implementation otherwise."""
    try:
        return torch.optim.Adam(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(groups, lr=lr)


def param_groups(model: RecommenderNet, weight_decay: float) -> list[dict]:
    """Weight decay on the MLP only: embeddings are regularised per occurrence instead.
    The sparse tables are left out: :func:`make_optimizers` gives them ``SparseAdam``."""
    dense = model.dense_parameters()
    skip = {id(p) for p in dense} | {id(p) for p in model.sparse_parameters()}
    rest = [p for p in model.parameters() if id(p) not in skip and p.requires_grad]
    return [{"params": dense, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def make_optimizers(model: RecommenderNet, config: TrainConfig) -> list[torch.optim.Optimizer]:
    """Adam for the dense parameters; lazy Adam (:class:`RowAdam`, ``SparseAdam``'s
    update) for the tables, which updates only the rows a step used and their moments, so
    a step costs the batch, not the tables."""
    optimizers = [make_adam(param_groups(model, config.weight_decay), config.lr)]
    sparse = model.sparse_parameters()
    if sparse:
        optimizers.append(RowAdam(sparse, lr=config.lr))
    return optimizers


def known_pairs(val: Part, train: Part, n_users: int, n_movies: int) -> Part:
    """The rows of ``val`` whose user and movie have a rating in ``train``: the pairs whose
    predictions training changes (the rest get the fallback, see ``movierec.train.fallback``;
    with a time-based split they are the new users and movies). All of ``val`` where that
    leaves none."""
    users = np.bincount(train.user_idx, minlength=n_users) > 0
    movies = np.bincount(train.movie_idx, minlength=n_movies) > 0
    ok = users[val.user_idx] & movies[val.movie_idx]
    if ok.all() or not ok.any():
        return val
    return Part(val.user_idx[ok], val.movie_idx[ok], val.rating[ok])


def fit(
    model: RecommenderNet,
    train: Part,
    val: Part | None,
    config: TrainConfig,
    *,
    val_in_train: bool = False,
) -> History:
    """Train ``model`` in place and leave it holding the best-validation weights.

    Each epoch shuffles with a generator seeded from ``config.seed``, then slices
    batches straight out of the tensors: no per-row ``Dataset.__getitem__``.
    ``val_in_train`` (or no ``val``): the validation ratings are part of ``train`` (a refit
    for a fixed epoch count), so no epoch is judged on them: there is no validation pass
    (at 25M ratings one costs about 5 s), and the weights of the last epoch are kept.
    """
    gen = torch.Generator().manual_seed(config.seed)
    u, m, r = as_tensors(train)
    optimizers = make_optimizers(model, config)
    config = config.for_data(len(r))
    judged = val is not None and not val_in_train
    if judged:
        val = known_pairs(val, train, model.config.n_users, model.config.n_movies)
    n, bs = len(r), config.batch_size
    rank_head = (
        model.config.rank_factors > 0 and config.rank_head == "bpr" and config.rank_weight > 0
    )
    n_movies = model.config.n_movies
    n_batches = math.ceil(n / bs)
    history = History([], [], 0, 0.0)
    # An exponential moving average of the weights is what gets evaluated and kept: it
    # smooths the noisy end of Adam's trajectory (torch's own AveragedModel does the work).
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
        if config.ema
        else None
    )
    evaluated = ema.module if ema is not None else model
    best_rmse, best_state, stale = math.inf, None, 0
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        bar = tqdm(
            total=n,
            desc=f"epoch {epoch}/{config.epochs}",
            leave=False,
            unit="row",
            unit_scale=True,
            smoothing=0.1,
            disable=True if config.quiet else None,  # None: shown on a terminal only
        )
        for b in range(n_batches):
            idx = perm[b * bs : (b + 1) * bs]
            negatives = (
                torch.randint(0, n_movies, (len(idx),), generator=gen) if rank_head else None
            )
            objective, loss = step_objective(model, config, u[idx], m[idx], r[idx], negatives)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            objective.backward()
            for opt in optimizers:
                opt.step()
            if ema is not None:
                ema.update_parameters(model)
            total += float(loss.detach()) * len(idx)
            bar.update(len(idx))
        bar.close()
        train_mse = total / n
        history.train_loss.append(train_mse)
        if not judged:
            history.best_epoch = epoch
            log.info("epoch %d/%d  train_mse %.4f", epoch, config.epochs, train_mse)
            continue
        val_rmse = float(np.sqrt(np.mean((predict_part(evaluated, val) - val.rating) ** 2)))
        history.val_rmse.append(val_rmse)
        improved = val_rmse < best_rmse - 1e-6
        if improved:
            best_rmse, best_state, stale = val_rmse, copy.deepcopy(evaluated.state_dict()), 0
            history.best_epoch = epoch
        else:
            stale += 1
        log.info(
            "epoch %d/%d  train_mse %.4f  val_rmse %.4f%s",
            epoch,
            config.epochs,
            train_mse,
            val_rmse,
            "  *best" if improved else "",
        )
        if config.patience and stale >= config.patience:
            log.info("early stop: no improvement in %d epochs", config.patience)
            break
    if ema is not None and not judged:
        model.load_state_dict(evaluated.state_dict())  # the average, as a judged run keeps
    elif best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    return history
