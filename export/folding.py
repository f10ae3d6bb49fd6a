"""The folded graph: the same function as ``RecommenderNet.predict``, cheaper to run.

The first Linear layer of the MLP acts on ``concat(user_emb, movie_emb)``, so it splits
into a user half and a movie half: ``W @ [p; q] + b = (W_u p) + (W_m q + b)``. Both halves
are folded into the tables at export time, and the dot-product branch and the biases are
appended as extra columns, so that each pair costs two gathers, one add and the rest of
the MLP instead of a ``2d x h1`` matrix product per pair:

    user table  [n_users,  h1 + f + 2] = [W_u p_u | P_u | b_u + g | 1  ]
    movie table [n_movies, h1 + f + 2] = [W_m q_i + b | Q_i | 1 | b_i]
    z = MLP_rest(relu(U[:h1] + M[:h1])) + sum(U[h1:] * M[h1:])
"""

from __future__ import annotations

import torch
from torch import nn

from train.model import RecommenderNet


class FoldedNet(nn.Module):
    """``RecommenderNet.predict`` with the first Linear layer folded into the tables."""

    def __init__(self, model: RecommenderNet) -> None:
        super().__init__()
        c = model.config
        self.config = c
        with torch.no_grad():
            first = model.mlp[0]
            d = c.embedding_dim
            if c.hidden:
                w_u, w_m = first.weight[:, :d], first.weight[:, d:]
                user_parts = [model.user_embedding.weight @ w_u.T]
                movie_parts = [model.movie_embedding.weight @ w_m.T + first.bias]
                rest = list(model.mlp)[1:]  # ReLU, Linear, ..., Linear
            else:  # a single Linear: the whole MLP is linear and folds into the tables
                user_parts = [model.user_embedding.weight @ first.weight[:, :d].T]
                movie_parts = [model.movie_embedding.weight @ first.weight[:, d:].T + first.bias]
                rest = []
            self.width = user_parts[0].shape[1]
            self.linear_head = not c.hidden
            extra_u, extra_m = [], []
            if c.factors:
                extra_u.append(model.user_factors.weight)
                extra_m.append(model.movie_factors.weight)
            if c.use_bias:
                ones_u = torch.ones(c.n_users, 1)
                ones_m = torch.ones(c.n_movies, 1)
                extra_u += [model.user_bias.weight + model.global_bias, ones_u]
                extra_m += [ones_m, model.movie_bias.weight]
            self.user_table = nn.Parameter(
                torch.cat(user_parts + extra_u, 1).contiguous(), requires_grad=False
            )
            self.movie_table = nn.Parameter(
                torch.cat(movie_parts + extra_m, 1).contiguous(), requires_grad=False
            )
            self.has_extra = bool(extra_u)
        self.rest = nn.Sequential(*[_frozen_copy(m) for m in rest])

    def forward(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        u = self.user_table[user_idx]
        m = self.movie_table[movie_idx]
        h = self.width
        first = u[:, :h] + m[:, :h]
        z = first.squeeze(-1) if self.linear_head else self.rest(first).squeeze(-1)
        if self.has_extra:
            z = z + (u[:, h:] * m[:, h:]).sum(-1)
        c = self.config
        if c.bounded:
            z = c.rating_min + (c.rating_max - c.rating_min) * torch.sigmoid(z)
        return z.clamp(c.rating_min, c.rating_max)


def _frozen_copy(module: nn.Module) -> nn.Module:
    import copy

    module = copy.deepcopy(module)
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def count_flops_per_pair(model: RecommenderNet, folded: bool) -> int:
    """Multiply-adds x 2 of the dense layers per pair (gathers and activations excluded)."""
    c = model.config
    widths = [2 * c.embedding_dim, *c.hidden, 1]
    layers = list(zip(widths[:-1], widths[1:], strict=True))
    flops = sum(2 * a * b for a, b in (layers[1:] if folded else layers))
    if folded:
        flops += widths[1]  # the add of the two folded halves
    extra = c.factors + (2 if c.use_bias else 0)
    return flops + 2 * extra
