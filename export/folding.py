"""The folded graph: the same function as ``RecommenderNet``, cheaper to run.

The first Linear layer of the MLP acts on ``concat(user_emb, movie_emb)``, so it splits
into a user half and a movie half: ``W @ [p; q] + b = (W_u p) + (W_m q + b)``. Both halves
are folded into the tables at export time (side information included), and the
dot-product branch and the biases become extra columns, so each pair costs two gathers,
one add and the rest of the MLP instead of a ``2d x h1`` matrix product per pair:

    user table  [n_users,  h1 + f + 2 + R    ] = [W_u p_u     | P_u | b_u + g | 1   | R_u]
    movie table [n_movies, h1 + f + 2 + R + 1] = [W_m q_i + b | Q_i | 1       | b_i | S_i | c_i]
    rating = squash(MLP_rest(relu(U[:h1] + M[:h1])) + sum(U[h1:h1+f+2] * M[h1:h1+f+2]))
    rank_score = sum(U[rank] * M[rank]) + c_i + mix * rating
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from train.model import RecommenderNet


class ScoringModule(nn.Module):
    """The plain graph: ``RecommenderNet.predict_with_rank`` as trained, with each row's
    side-information and implicit terms summed into the tables (they depend on the
    row alone)."""

    def __init__(self, model: RecommenderNet) -> None:
        super().__init__()
        self.model = copy.deepcopy(model)
        with torch.no_grad():
            users, movies = model.effective_tables()
        self.user_rows = nn.Parameter(users.contiguous(), requires_grad=False)
        self.movie_rows = nn.Parameter(movies.contiguous(), requires_grad=False)

    def forward(self, user_idx: torch.Tensor, movie_idx: torch.Tensor):
        c, model = self.model.config, self.model
        u, m = self.user_rows[user_idx], self.movie_rows[movie_idx]
        rating = model.rating_from_logits(model.logits_from_rows(u, m))
        rating = rating.clamp(c.rating_min, c.rating_max)
        if not c.rank_factors:
            return rating, rating
        return rating, model.rank_logits_from_rows(u, m) + model.rank_mix * rating


class FoldedNet(nn.Module):
    """``RecommenderNet.predict_with_rank`` with the first Linear folded into the tables."""

    def __init__(self, model: RecommenderNet) -> None:
        super().__init__()
        c = model.config
        self.config = c
        uc, mc = model.ucols, model.mcols
        with torch.no_grad():
            users, movies = model.effective_tables()
            first = model.mlp[0]
            d = c.embedding_dim
            user_parts = [users[:, uc["embedding"]] @ first.weight[:, :d].T]
            movie_parts = [movies[:, mc["embedding"]] @ first.weight[:, d:].T + first.bias]
            self.width = user_parts[0].shape[1]
            self.linear_head = not c.hidden  # a single Linear: it folds completely
            if c.factors:
                user_parts.append(users[:, uc["factors"]])
                movie_parts.append(movies[:, mc["factors"]])
            if c.use_bias:
                user_parts += [users[:, uc["bias"]] + model.global_bias, torch.ones(c.n_users, 1)]
                movie_parts += [torch.ones(c.n_movies, 1), movies[:, mc["bias"]]]
            self.dot_end = sum(p.shape[1] for p in user_parts)
            if c.rank_factors:
                user_parts.append(users[:, uc["rank"]])
                movie_parts += [movies[:, mc["rank"]], movies[:, mc["rank_bias"]]]
            self.user_table = nn.Parameter(
                torch.cat(user_parts, 1).contiguous(), requires_grad=False
            )
            self.movie_table = nn.Parameter(
                torch.cat(movie_parts, 1).contiguous(), requires_grad=False
            )
            self.register_buffer("rank_mix", model.rank_mix.detach().clone())
        rest = [] if self.linear_head else list(model.mlp)[1:]
        self.rest = nn.Sequential(*[_frozen_copy(m) for m in rest])

    def forward(self, user_idx: torch.Tensor, movie_idx: torch.Tensor):
        c = self.config
        u = self.user_table[user_idx]
        m = self.movie_table[movie_idx]
        h, e = self.width, self.dot_end
        first = u[:, :h] + m[:, :h]
        z = first.squeeze(-1) if self.linear_head else self.rest(first).squeeze(-1)
        if e > h:
            z = z + (u[:, h:e] * m[:, h:e]).sum(-1)
        if c.bounded:
            z = c.rating_min + (c.rating_max - c.rating_min) * torch.sigmoid(z)
        rating = z.clamp(c.rating_min, c.rating_max)
        if not c.rank_factors:
            return rating, rating
        rank = (u[:, e:] * m[:, e:-1]).sum(-1) + m[:, -1] + self.rank_mix * rating
        return rating, rank


def _frozen_copy(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module)
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def count_flops_per_pair(model: RecommenderNet, folded: bool) -> int:
    """Floating-point operations per pair of the dense layers and dot products
    (2 per multiply-add; gathers and activations excluded)."""
    c = model.config
    widths = [2 * c.embedding_dim, *c.hidden, 1]
    layers = list(zip(widths[:-1], widths[1:], strict=True))
    flops = sum(2 * a * b for a, b in (layers[1:] if folded else layers))
    if folded:
        flops += widths[1]  # the add of the two folded halves
    extra = c.factors + (2 if c.use_bias else 0) + (c.rank_factors + 1 if c.rank_factors else 0)
    return flops + 2 * extra
