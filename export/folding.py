"""The exported graphs: the same function as ``RecommenderNet``, laid out to run fast.

Every graph reads per-row tables (side-information and implicit terms summed in, since
they depend on the row alone), one table per part, gathered with ``Gather`` straight into
the array each part needs, so the runtime never slices or copies a gathered row again:

    mlp   user [n_users, w]   movie [n_movies, w]      (plain: the embeddings, w = d;
                                                         folded: the first layer, w = h1)
    dot   user [n_users, f+2] movie [n_movies, f+2]    = [P_u | b_u + g | 1] . [Q_i | 1 | b_i]
    rank  user [n_users, R+1] movie [n_movies, R+1]    = [R_u | 1] . [S_i | c_i]

    rating     = squash(MLP(mlp_u, mlp_i) + sum(dot_u * dot_i))
    rank_score = sum(rank_u * rank_i) + mix * rating

The folded graph (the default) folds the MLP's first Linear layer into the tables: it acts
on ``concat(p, q)``, so ``W [p; q] + b = (W_u p) + (W_m q + b)`` and each pair costs one add
instead of a ``2d x h1`` matrix product. A model without hidden layers folds completely
(its single Linear becomes one more pair of dot columns).

:class:`CatalogNet` turns the folded graph around for catalog mode: a block of users against
every movie, the dot products as ``[B, f] x [f, N]`` MatMuls and the MLP bounded once per
user, giving an upper bound of every pair's rank score, then the exclusions and ``TopK``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from movierec.train.model import RecommenderNet

#: Which user and movie rows of the model a graph holds (sorted), in the graph's row order;
#: None: every row. The exporter leaves out the rows training never moved.
Rows = tuple[torch.Tensor, torch.Tensor] | None


class _Tables:
    """Every row of both sides (or those ``rows`` selects), split into the parts the
    graphs gather separately."""

    def __init__(self, model: RecommenderNet, rows: Rows = None) -> None:
        c, uc, mc = model.config, model.ucols, model.mcols
        with torch.no_grad():
            users, movies = model.effective_tables()
            if rows is not None:
                users, movies = users[rows[0]], movies[rows[1]]
            n_u, n_m = users.shape[0], movies.shape[0]
            self.n_users, self.n_movies = n_u, n_m
            self.user_emb = users[:, uc["embedding"]]
            self.movie_emb = movies[:, mc["embedding"]]
            user_dot, movie_dot = [], []
            if c.factors:
                user_dot.append(users[:, uc["factors"]])
                movie_dot.append(movies[:, mc["factors"]])
            if c.use_bias:
                user_dot += [users[:, uc["bias"]] + model.global_bias, torch.ones(n_u, 1)]
                movie_dot += [torch.ones(n_m, 1), movies[:, mc["bias"]]]
            self.user_dot, self.movie_dot = user_dot, movie_dot
            self.user_rank = self.movie_rank = None
            if c.rank_factors:
                self.user_rank = torch.cat([users[:, uc["rank"]], torch.ones(n_u, 1)], 1)
                self.movie_rank = torch.cat([movies[:, mc["rank"]], movies[:, mc["rank_bias"]]], 1)


def _frozen(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone().contiguous(), requires_grad=False)


def _frozen_copy(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module)
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class _PairsGraph(nn.Module):
    """Shared forward of the pairs graphs: ``(user_idx, movie_idx) -> (rating, rank_score)``."""

    def _install(
        self,
        model: RecommenderNet,
        mlp_tables: tuple[torch.Tensor, torch.Tensor] | None,
        rest: list[nn.Module],
        dot_parts: tuple[list[torch.Tensor], list[torch.Tensor]],
        tables: _Tables,
    ) -> None:
        c = model.config
        self.config = c
        self.has_mlp = mlp_tables is not None
        if mlp_tables is not None:
            self.user_mlp = _frozen(mlp_tables[0])
            self.movie_mlp = _frozen(mlp_tables[1])
        self.rest = nn.Sequential(*[_frozen_copy(m) for m in rest])
        user_dot, movie_dot = dot_parts
        self.has_dot = bool(user_dot)
        if user_dot:
            self.user_dot = _frozen(torch.cat(user_dot, 1))
            self.movie_dot = _frozen(torch.cat(movie_dot, 1))
        self.has_rank = tables.user_rank is not None
        if self.has_rank:
            self.user_rank = _frozen(tables.user_rank)
            self.movie_rank = _frozen(tables.movie_rank)
        self.register_buffer("rank_mix", model.rank_mix.detach().clone())

    def logits(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        z = None
        if self.has_mlp:
            z = self.mlp_logits(F.embedding(user_idx, self.user_mlp), movie_idx)
        if self.has_dot:
            user_dot = F.embedding(user_idx, self.user_dot)
            dot = (user_dot * F.embedding(movie_idx, self.movie_dot)).sum(-1)
            z = dot if z is None else z + dot
        return z

    def mlp_logits(self, user_part: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, user_idx: torch.Tensor, movie_idx: torch.Tensor):
        c = self.config
        z = self.logits(user_idx, movie_idx)
        if c.bounded:
            z = c.rating_min + (c.rating_max - c.rating_min) * torch.sigmoid(z)
        rating = z.clamp(c.rating_min, c.rating_max)
        if not self.has_rank:
            return rating, rating
        user_rank = F.embedding(user_idx, self.user_rank)
        rank = (user_rank * F.embedding(movie_idx, self.movie_rank)).sum(-1)
        return rating, rank + self.rank_mix * rating


class ScoringModule(_PairsGraph):
    """The plain graph: the network as trained (the first Linear acts on the concatenated
    embeddings), with each row's side-information and implicit terms in the tables."""

    def __init__(self, model: RecommenderNet, rows: Rows = None) -> None:
        super().__init__()
        t = _Tables(model, rows)
        self._install(
            model, (t.user_emb, t.movie_emb), list(model.mlp), (t.user_dot, t.movie_dot), t
        )

    def mlp_logits(self, user_part: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        x = torch.cat([user_part, F.embedding(movie_idx, self.movie_mlp)], -1)
        return self.rest(x).squeeze(-1)


class FoldedNet(_PairsGraph):
    """``RecommenderNet.predict_with_rank`` with the first Linear folded into the tables."""

    def __init__(self, model: RecommenderNet, rows: Rows = None) -> None:
        super().__init__()
        c = model.config
        t = _Tables(model, rows)
        first = model.mlp[0]
        d = c.embedding_dim
        with torch.no_grad():
            user_first = t.user_emb @ first.weight[:, :d].T
            movie_first = t.movie_emb @ first.weight[:, d:].T + first.bias
        user_dot, movie_dot = list(t.user_dot), list(t.movie_dot)
        if c.hidden:
            # the output layer's bias joins the dot columns (one pass less per score)
            *middle, last = list(model.mlp)[1:]
            out = nn.Linear(last.in_features, 1, bias=False)
            with torch.no_grad():
                out.weight.copy_(last.weight)
                if c.use_bias:  # [... | 1] . [... | b_i]  ->  [... | 1] . [... | b_i + b]
                    movie_dot[-1] = movie_dot[-1] + last.bias
                else:
                    user_dot.append(torch.ones(t.n_users, 1))
                    movie_dot.append(last.bias.expand(t.n_movies, 1))
            mlp_tables, rest = (user_first, movie_first), [*middle, out]
        else:  # a single Linear(2d, 1): its two halves are one more pair of dot columns
            mlp_tables, rest = None, []
            user_dot += [user_first, torch.ones(t.n_users, 1)]
            movie_dot += [torch.ones(t.n_movies, 1), movie_first]
        self._install(model, mlp_tables, rest, (user_dot, movie_dot), t)
        self.n_movies = t.n_movies

    def mlp_logits(self, user_part: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        return self.rest(user_part + F.embedding(movie_idx, self.movie_mlp)).squeeze(-1)


#: Users x movies per call of a catalog graph: a bound graph's intermediate arrays hold
#: a few floats per pair; an exact one (the broadcast MLP) holds ``h1`` floats per pair.
BOUND_CALL_PAIRS = 1 << 20
EXACT_CALL_PAIRS = 1 << 13


class CatalogNet(nn.Module):
    """Catalog mode's candidate search: ``(user_idx [B], excluded [E], k)`` ->
    ``(top_movie_idx [B, k], top_rank_bound [B, k])``.

    For a block of users against every movie it computes an upper bound of each pair's
    rank score that costs matrix products instead of the network:

    * the dot-product columns and the ranking head exactly (one MatMul each);
    * the MLP by its largest value over a box holding every movie's folded first layer
      (the movie table's per-column min and max): interval bounds through the remaining
      layers, once per user, not per pair;
    * the rating, monotone in the logit, squashed and clipped from that bound, and
      mixed into the rank score (by its lowest value when the mix is negative).

    ``excluded`` (flat positions ``user * n_movies + movie_row``, ``user`` indexing
    ``user_idx``) get ``-inf``; ``TopK`` keeps the ``k`` highest bounds. The scorer scores
    candidates through the pairs graph until no other movie can reach the K-th best.

    A model without factors and ranking head (the seed network) would get the same bound
    for nearly every movie, so its graph computes the exact rank score instead.
    """

    def __init__(self, model: RecommenderNet, rows: Rows = None) -> None:
        super().__init__()
        pairs = FoldedNet(model, rows)
        self.config = c = pairs.config
        self.n_movies = pairs.n_movies
        self.has_mlp, self.has_dot, self.has_rank = pairs.has_mlp, pairs.has_dot, pairs.has_rank
        # the MLP alone tells movies apart (the dot columns hold only biases): exact
        self.exact = self.has_mlp and not (self.has_rank or c.factors)
        self.bound = "exact" if self.exact else "interval"
        self.call_pairs = EXACT_CALL_PAIRS if self.exact else BOUND_CALL_PAIRS
        mix = float(pairs.rank_mix) if self.has_rank else 1.0
        #: a negative mix needs the rating's lowest value for the rank score's highest
        self.rating_side = "low" if mix < 0 else "high"
        if self.has_mlp:
            self.user_mlp = pairs.user_mlp
            self.rest = pairs.rest
        if self.exact:  # the rank score is the rating: MLP + dot columns (biases)
            self.movie_mlp = pairs.movie_mlp
            if self.has_dot:
                self.user_dot = pairs.user_dot
                self.movie_dot_t = _frozen(pairs.movie_dot.T)
            return
        if self.has_mlp:
            for module in self.rest:
                if not isinstance(module, (nn.ReLU, nn.Linear)):
                    raise TypeError(f"no interval bound for {type(module).__name__}")
            with torch.no_grad():
                self.register_buffer("movie_mlp_low", pairs.movie_mlp.min(0).values.clone())
                self.register_buffer("movie_mlp_high", pairs.movie_mlp.max(0).values.clone())
        lo, hi = c.rating_min, c.rating_max
        # bounded: rank_score <= rank head + mix * lo + mix * (hi - lo) * sigmoid(z), the
        # first two terms one MatMul (mix * lo joins the movie's rank bias column); the
        # clip of the rating is moot (the sigmoid's range lies within the scale)
        self.register_buffer("rating_scale", torch.tensor(mix * (hi - lo)))
        self.register_buffer("rating_offset", torch.tensor(mix * lo))
        self.rating_beta = mix * (hi - lo) if c.bounded else mix
        if self.has_dot:
            self.user_dot = pairs.user_dot
            movie_dot_t = pairs.movie_dot.T
            if self.has_mlp:  # the MLP's bound rides in one more column: no Add after it
                movie_dot_t = torch.cat([movie_dot_t, torch.ones(1, self.n_movies)])
            self.movie_dot_t = _frozen(movie_dot_t)
        if self.has_rank:
            self.user_rank = pairs.user_rank
            movie_rank_t = pairs.movie_rank.T.clone()
            if c.bounded:
                movie_rank_t[-1] += mix * lo  # [R_u | 1] . [S_i | c_i + mix * lo]
            self.movie_rank_t = _frozen(movie_rank_t)

    def _rating(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.bounded:
            z = c.rating_min + (c.rating_max - c.rating_min) * torch.sigmoid(z)
        return z.clamp(c.rating_min, c.rating_max)

    def exact_scores(self, user_idx: torch.Tensor) -> torch.Tensor:
        """The exact rank score of every user in ``user_idx`` x every movie, ``[B, N]``:
        the broadcast MLP (the bound of a graph with ``exact`` set)."""
        first = F.embedding(user_idx, self.user_mlp).unsqueeze(1) + self.movie_mlp.unsqueeze(0)
        z = self.rest(first).squeeze(-1)
        if self.has_dot:
            z = z + F.embedding(user_idx, self.user_dot) @ self.movie_dot_t
        return self._rating(z)

    def mlp_bounds(self, user_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` ``[B, 1]``: the MLP's range for each user over the box of every
        movie (interval arithmetic: a Linear maps centre and radius, ReLU both ends)."""
        first = F.embedding(user_idx, self.user_mlp)
        low, high = first + self.movie_mlp_low, first + self.movie_mlp_high
        for module in self.rest:
            if isinstance(module, nn.ReLU):
                low, high = torch.relu(low), torch.relu(high)
                continue
            centre = F.linear((low + high) / 2, module.weight, module.bias)
            radius = F.linear((high - low) / 2, module.weight.abs())
            low, high = centre - radius, centre + radius
        return low, high

    def upper_bounds(self, user_idx: torch.Tensor) -> torch.Tensor:
        """An upper bound of the rank score of every user x every movie, ``[B, N]``."""
        if self.exact:
            return self.exact_scores(user_idx)
        c = self.config
        z = None
        if self.has_mlp:
            low, high = self.mlp_bounds(user_idx)
            z = high if self.rating_side == "high" else low
        if self.has_dot:
            user = F.embedding(user_idx, self.user_dot)
            if z is not None:
                user = torch.cat([user, z], 1)
            z = user @ self.movie_dot_t
        # the rating's part: (mix * (hi - lo)) x sigmoid, or mix x the clipped logit
        rating = torch.sigmoid(z) if c.bounded else z.clamp(c.rating_min, c.rating_max)
        if not self.has_rank:
            return self.rating_scale * rating + self.rating_offset if c.bounded else rating
        user = F.embedding(user_idx, self.user_rank)
        # one Gemm: beta x rating + [R_u | 1] . [S_i | c_i (+ mix * lo)]
        return torch.addmm(rating, user, self.movie_rank_t, beta=self.rating_beta)

    def forward(self, user_idx: torch.Tensor, excluded: torch.Tensor, k: torch.Tensor):
        bounds = self.upper_bounds(user_idx)
        flat = bounds.reshape(-1).index_put((excluded,), torch.tensor(float("-inf")))
        kk = k.item()
        torch._check(kk >= 1)
        torch._check(kk <= self.n_movies)
        top, rows = torch.topk(flat.reshape(bounds.shape), kk, dim=1, largest=True, sorted=True)
        return rows, top


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
