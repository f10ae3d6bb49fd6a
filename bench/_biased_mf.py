"""The scale benchmark's reference model: plain biased matrix factorisation.

``mu + b_u + b_i + p_u . q_i`` with 16 factors, L2 0.1 per occurrence (on the rows a
batch uses, as SGD matrix factorisation regularises), sparse embedding gradients and
``torch.optim.SparseAdam``, a fixed 8 epochs and no early stopping: the baseline that
issue 12 measures default ``rec-train`` against, trained on the very same split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from movierec.train.split import Split


@dataclass(frozen=True)
class MFConfig:
    factors: int = 16
    reg: float = 0.1
    epochs: int = 8
    batch_size: int = 8192
    lr: float = 1e-2
    seed: int = 42


class BiasedMF(nn.Module):
    def __init__(self, n_users: int, n_movies: int, factors: int, mean: float) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, factors + 1, sparse=True)  # [p_u | b_u]
        self.movies = nn.Embedding(n_movies, factors + 1, sparse=True)  # [q_i | b_i]
        nn.init.normal_(self.users.weight, std=0.05)
        nn.init.normal_(self.movies.weight, std=0.05)
        with torch.no_grad():
            self.users.weight[:, -1] = 0
            self.movies.weight[:, -1] = 0
        self.mean = mean

    def forward(self, u: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prediction, squared norm of the rows used)`` per pair."""
        pu, qm = self.users(u), self.movies(m)
        pred = self.mean + pu[:, -1] + qm[:, -1] + (pu[:, :-1] * qm[:, :-1]).sum(-1)
        return pred, pu.pow(2).sum(-1) + qm.pow(2).sum(-1)


def train_biased_mf(
    split: Split, scale: tuple[float, float], config: MFConfig = MFConfig()
) -> dict:
    """Train on ``split.train``; return the test RMSE (predictions clipped to ``scale``),
    seconds and settings."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    train = split.train
    u = torch.from_numpy(train.user_idx.astype(np.int64))
    m = torch.from_numpy(train.movie_idx.astype(np.int64))
    r = torch.from_numpy(train.rating.astype(np.float32))
    model = BiasedMF(
        split.vocab.n_users, split.vocab.n_movies, config.factors, float(train.rating.mean())
    )
    opt = torch.optim.SparseAdam(model.parameters(), lr=config.lr)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(config.epochs):
        perm = torch.randperm(len(r), generator=gen)
        for s in range(0, len(r), config.batch_size):
            idx = perm[s : s + config.batch_size]
            pred, sq = model(u[idx], m[idx])
            loss = torch.nn.functional.mse_loss(pred, r[idx]) + config.reg * sq.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    test = split.test
    lo, hi = scale
    with torch.no_grad():
        pred, _ = model(torch.from_numpy(test.user_idx), torch.from_numpy(test.movie_idx))
    pred = pred.clamp(lo, hi).numpy().astype(np.float64)
    rmse = float(np.sqrt(np.mean((pred - test.rating) ** 2)))
    return {
        "test_rmse": rmse,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "config": config.__dict__,
        "torch_threads": torch.get_num_threads(),
    }
