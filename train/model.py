"""``RecommenderNet``: user and movie embeddings -> MLP -> one rating (and a ranking score).

One class covers both architectures so that export and scoring see one contract
(a user index and a movie index in; a rating, and a score to rank by, out):

* ``seed``: the notebook's network: embeddings of 100, Linear 128 -> ReLU -> Linear 64
  -> ReLU -> Linear 1, unbounded output.
* ``hybrid`` (default): an MLP branch over its own concatenated user and movie
  embeddings, beside a matrix-factorisation branch (a dot product of wider factors),
  a global bias and user and movie biases, squashed into the rating scale by a scaled
  sigmoid. Giving the MLP its own embeddings keeps it from overfitting the factors the
  dot product relies on (as in NeuMF). Side information (user age, gender, occupation;
  movie genres and year) is held as fixed per-row tables whose linear projection is
  added to each row. A ranking head (a dot product plus a movie bias) is mixed with the
  rating into ``rank_score``: fit in closed form after training (the item-item head,
  ``movierec.train.item_item``, installed by :meth:`RecommenderNet.set_rank_factors`)
  or trained with a BPR loss on which movies users chose to rate.

Each side's learned parameters live in one table whose columns are laid out as
``[mlp embedding | factors | bias | rank factors | rank bias]`` (absent parts have
zero width), so the rows a batch uses can be regularised together, per occurrence.

Training costs the batch, not the tables: the hybrid's tables have sparse gradients (a
step updates only the rows it used, with a lazy Adam: ``movierec.train.optim``), a
batch's rows are gathered once per distinct user and movie, and the implicit sums cover
the neighbour lists of those rows alone (``movierec.train.implicit``).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from movierec.train.implicit import Neighbours, neighbour_lists

ARCHITECTURES = ("hybrid", "seed")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; saved verbatim in the checkpoint."""

    n_users: int
    n_movies: int
    arch: str = "hybrid"
    embedding_dim: int = 32  # MLP-branch embedding width (per side)
    hidden: tuple[int, ...] = (64,)
    factors: int = 64  # dot-product branch width; 0 disables the branch
    use_bias: bool = True
    bounded: bool = True
    rating_min: float = 1.0
    rating_max: float = 5.0
    global_mean: float = 3.5
    init_std: float = 0.05
    n_user_features: int = 0
    n_movie_features: int = 0
    rank_factors: int = 0  # ranking-head width; 0: rank by the rating alone
    #: Entries of the users' implicit neighbour lists (movies each user rated in
    #: training); 0 disables the implicit terms.
    implicit_nnz: int = 0
    #: Entries of the movies' lists (each movie's raters); 0: no movie-side term; None:
    #: as ``implicit_nnz``.
    implicit_movie_nnz: int | None = None
    #: Movies kept in a user's list and raters kept in a movie's (a seeded sample where
    #: there are more); 0 keeps all.
    implicit_cap: int = 0
    implicit_movie_cap: int = 0
    implicit_seed: int = 0  # seeds that sample

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", ()))
        return cls(**d)

    def implicit_size(self, side: str) -> int:
        """Entries of ``side``'s neighbour lists (0: that side has no implicit term)."""
        if side == "user":
            return self.implicit_nnz
        return self.implicit_nnz if self.implicit_movie_nnz is None else self.implicit_movie_nnz

    def columns(self, side: str) -> dict[str, slice]:
        """Column ranges of each part in the ``side`` ("user" or "movie") table."""
        widths = [
            ("embedding", self.embedding_dim),
            ("factors", self.factors),
            ("bias", int(self.use_bias)),
            ("rank", self.rank_factors),
        ]
        if side == "movie":
            widths.append(("rank_bias", int(self.rank_factors > 0)))
        out, start = {}, 0
        for name, width in widths:
            out[name] = slice(start, start + width)
            start += width
        out["all"] = slice(0, start)
        return out


@dataclass
class BatchRows:
    """Rows gathered for a batch, with what their per-occurrence penalties need."""

    rows: torch.Tensor  # [n, width]: table row + side information + implicit term
    table_sq: torch.Tensor  # [n]: squared norm of each table row
    implicit_sq: torch.Tensor  # scalar: squared norm of the distinct implicit vectors used


class RecommenderNet(nn.Module):
    """Predicts the rating of ``movie_idx`` by ``user_idx`` (both int64, shape [batch])."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.ucols, self.mcols = config.columns("user"), config.columns("movie")
        self.user_table = nn.Embedding(config.n_users, self.ucols["all"].stop)
        self.movie_table = nn.Embedding(config.n_movies, self.mcols["all"].stop)
        self.register_buffer("user_features", torch.zeros(config.n_users, config.n_user_features))
        self.register_buffer(
            "movie_features", torch.zeros(config.n_movies, config.n_movie_features)
        )
        self.user_side = (
            nn.Linear(config.n_user_features, self.ucols["all"].stop, bias=False)
            if config.n_user_features
            else None
        )
        self.movie_side = (
            nn.Linear(config.n_movie_features, self.mcols["all"].stop, bias=False)
            if config.n_movie_features
            else None
        )
        # Sparse gradients: a step touches only the table rows its batch used (RowAdam).
        # The notebook's network keeps dense ones, as the notebook trained it.
        self.sparse = config.arch != "seed"
        self.user_table.sparse = self.movie_table.sparse = self.sparse
        # SVD++-style implicit feedback: a user's row gains the vectors of the movies they
        # rated in training, a movie's row those of its raters, each sum scaled by
        # 1/sqrt(count) (over at most ``implicit_*cap`` neighbours per row). The lists are
        # CSR buffers, so the model that is saved and exported sums over the very same
        # neighbours as the one that was trained.
        self.user_implicit = self.movie_implicit = None
        for side, n_rows, n_cols, width in (
            ("user", config.n_users, config.n_movies, self.ucols["all"].stop),
            ("movie", config.n_movies, config.n_users, self.mcols["all"].stop),
        ):
            nnz = config.implicit_size(side)
            if not nnz:
                continue
            setattr(self, f"{side}_implicit", nn.Embedding(n_cols, width, sparse=self.sparse))
            self.register_buffer(f"{side}_nb_indptr", torch.zeros(n_rows + 1, dtype=torch.long))
            self.register_buffer(f"{side}_nb_indices", torch.zeros(nnz, dtype=torch.long))
            self.register_buffer(f"{side}_nb_scale", torch.zeros(n_rows))
        layers: list[nn.Module] = []
        width = 2 * config.embedding_dim
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        if config.use_bias:
            self.global_bias = nn.Parameter(torch.tensor([self._initial_offset()]))
        else:
            self.register_buffer("global_bias", torch.zeros(1))
        #: Weight of the rating in ``rank_score``; chosen on the validation split.
        self.register_buffer("rank_mix", torch.tensor(1.0))
        self._reset_parameters()

    def _initial_offset(self) -> float:
        c = self.config
        if not c.use_bias:
            return 0.0
        if not c.bounded:
            return c.global_mean
        span = c.rating_max - c.rating_min
        p = min(max((c.global_mean - c.rating_min) / span, 1e-3), 1 - 1e-3)
        return float(torch.logit(torch.tensor(p)))

    def _reset_parameters(self) -> None:
        std = self.config.init_std
        nn.init.normal_(self.user_table.weight, std=std)
        nn.init.normal_(self.movie_table.weight, std=std)
        for side in (self.user_side, self.movie_side):
            if side is not None:
                nn.init.zeros_(side.weight)
        for table in (self.user_implicit, self.movie_implicit):
            if table is not None:
                nn.init.zeros_(table.weight)  # the term starts as a no-op
        if self.config.arch == "seed":
            return  # the notebook's Linear layers keep PyTorch's defaults
        with torch.no_grad():
            for table, cols in ((self.user_table, self.ucols), (self.movie_table, self.mcols)):
                table.weight[:, cols["bias"]] = 0.0
                if "rank_bias" in cols:
                    table.weight[:, cols["rank_bias"]] = 0.0
        # The last layer starts at zero so the MLP branch begins as a no-op around the biases.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def set_side_features(self, users: torch.Tensor, movies: torch.Tensor) -> None:
        """Install the side-information tables (shapes fixed by the config)."""
        self.user_features.copy_(users)
        self.movie_features.copy_(movies)

    def set_implicit(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> None:
        """Install the neighbour lists of these training pairs (capped and seeded as the
        config says); their sizes must be the config's ``implicit_nnz`` and
        ``implicit_movie_nnz``."""
        c = self.config
        u, m = np.asarray(user_idx, np.int64), np.asarray(movie_idx, np.int64)
        self.set_neighbours(
            neighbour_lists(u, m, c.n_users, c.implicit_cap, c.implicit_seed),
            neighbour_lists(m, u, c.n_movies, c.implicit_movie_cap, c.implicit_seed + 1),
        )

    def set_neighbours(self, users: Neighbours, movies: Neighbours) -> None:
        """Install neighbour lists built by :func:`movierec.train.implicit.neighbour_lists`."""
        for side, lists in (("user", users), ("movie", movies)):
            if getattr(self, f"{side}_implicit") is None:
                continue
            want = self.config.implicit_size(side)
            if lists.nnz != want:
                raise ValueError(f"{side} neighbour lists hold {lists.nnz} entries, not {want}")
            getattr(self, f"{side}_nb_indptr").copy_(torch.from_numpy(lists.indptr))
            getattr(self, f"{side}_nb_indices").copy_(torch.from_numpy(lists.indices))
            getattr(self, f"{side}_nb_scale").copy_(torch.from_numpy(lists.scale))

    @torch.no_grad()
    def set_rank_factors(self, user: torch.Tensor, movie: torch.Tensor) -> None:
        """Make the ranking head ``user . movie`` exactly (a head fit in closed form, such
        as ``movierec.train.item_item``): the tables' rank columns take the factors, the
        movie rank bias and every other contribution to those columns (side information,
        implicit sums) become zero, so the effective rows that export reads carry them
        unchanged."""
        uc, mc = self.ucols["rank"], self.mcols["rank"]
        width = uc.stop - uc.start
        if user.shape != (self.config.n_users, width) or movie.shape != (
            self.config.n_movies,
            width,
        ):
            raise ValueError(
                f"rank factors of shapes {tuple(user.shape)} and {tuple(movie.shape)} do not "
                f"fit {self.config.n_users} users, {self.config.n_movies} movies, width {width}"
            )
        self.user_table.weight[:, uc] = user
        self.movie_table.weight[:, mc] = movie
        self.movie_table.weight[:, self.mcols["rank_bias"]] = 0.0
        for part, cols in (
            (self.user_side, self.ucols),
            (self.movie_side, self.mcols),
        ):
            if part is not None:
                part.weight[cols["rank"]] = 0.0
                if "rank_bias" in cols:
                    part.weight[cols["rank_bias"]] = 0.0
        for table, cols in ((self.user_implicit, self.ucols), (self.movie_implicit, self.mcols)):
            if table is not None:
                table.weight[:, cols["rank"]] = 0.0
                if "rank_bias" in cols:
                    table.weight[:, cols["rank_bias"]] = 0.0
        self._tables = None

    @torch.no_grad()
    def set_rank_bias(self, bias: torch.Tensor) -> None:
        """Each movie's term in every user's rank score (``user . movie + bias``): a prior
        such as recent popularity (``movierec.train.recency``). After
        :meth:`set_rank_factors`, which zeroes it and all else that feeds the rank columns."""
        if bias.shape != (self.config.n_movies,):
            raise ValueError(
                f"a rank bias of shape {tuple(bias.shape)} for {self.config.n_movies} movies"
            )
        self.movie_table.weight[:, self.mcols["rank_bias"]] = bias.reshape(-1, 1)
        self._tables = None

    def _implicit(self, side: str, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sum(y_j for j in N(r)) / sqrt(|N(r)|)`` for each row in ``rows`` (weighted as
        :attr:`Neighbours.scale` says where a list is capped), over those rows' own lists
        only, so the cost is their lengths. Also returns the squared norm of the distinct
        neighbour vectors used (for their lazy weight decay).

        The distinct neighbours are gathered once (found with a mark per table row rather
        than a sort: 63 against 94 ms a step on 5M ratings) and the sums are one
        sparse-dense product, so the backward pass yields one gradient row per distinct
        neighbour; an ``embedding_bag`` yields one per list entry, and measured 2.5x
        slower with the optimiser's update of them."""
        indptr = getattr(self, f"{side}_nb_indptr")
        indices = getattr(self, f"{side}_nb_indices")
        start = indptr[rows]
        lens = indptr[rows + 1] - start
        crow = torch.zeros(len(rows) + 1, dtype=torch.long)
        torch.cumsum(lens, 0, out=crow[1:])
        total = int(crow[-1])
        flat = torch.repeat_interleave(start - crow[:-1], lens, output_size=total)
        flat += torch.arange(total)
        table = getattr(self, f"{side}_implicit")
        neighbours = indices[flat]
        marked = torch.zeros(table.num_embeddings, dtype=torch.bool)
        marked[neighbours] = True
        cols = marked.nonzero().squeeze(1)
        position = torch.empty(table.num_embeddings, dtype=torch.long)
        position[cols] = torch.arange(len(cols))
        inverse = position[neighbours]
        scale = getattr(self, f"{side}_nb_scale")[rows]
        values = torch.repeat_interleave(scale, lens, output_size=total)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            adjacency = torch.sparse_csr_tensor(crow, inverse, values, (len(rows), len(cols)))
            vectors = table(cols)
            sums = adjacency @ vectors
        return sums, vectors.pow(2).sum()

    # --- rows --------------------------------------------------------------------------
    def _distinct_rows(self, side: str, idx: torch.Tensor) -> BatchRows:
        """The rows of the distinct indices ``idx``: full rows (side information and
        implicit terms included) and the squared norms their penalties need."""
        table = (self.user_table if side == "user" else self.movie_table)(idx)
        rows = table
        proj = self.user_side if side == "user" else self.movie_side
        if proj is not None:
            feats = self.user_features if side == "user" else self.movie_features
            rows = rows + proj(feats[idx])
        implicit_sq = torch.zeros(())
        if getattr(self, f"{side}_implicit") is not None:
            implicit, implicit_sq = self._implicit(side, idx)
            rows = rows + implicit
        return BatchRows(rows, table.pow(2).sum(-1), implicit_sq)

    def batch_rows(self, side: str, idx: torch.Tensor) -> BatchRows:
        """:class:`BatchRows` of ``idx`` (with repeats): each distinct user or movie is
        gathered, and its implicit sum computed, once."""
        uniq, inverse = torch.unique(idx, return_inverse=True)
        found = self._distinct_rows(side, uniq)
        return BatchRows(found.rows[inverse], found.table_sq[inverse], found.implicit_sq)

    def _user_rows(self, idx: torch.Tensor) -> torch.Tensor:
        return self.batch_rows("user", idx).rows

    def _movie_rows(self, idx: torch.Tensor) -> torch.Tensor:
        return self.batch_rows("movie", idx).rows

    def _all_rows(self, side: str, block: int = 1 << 16) -> torch.Tensor:
        """Every row of ``side``, a block at a time (bounded temporaries)."""
        n = self.config.n_users if side == "user" else self.config.n_movies
        return torch.cat(
            [
                self._distinct_rows(side, torch.arange(s, min(s + block, n))).rows
                for s in range(0, n, block)
            ]
        )

    def train(self, mode: bool = True) -> RecommenderNet:
        self._tables = None  # weights may change: forget the cached rows
        return super().train(mode)

    def _inference_tables(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """In eval mode without autograd, every row is computed once and then gathered:
        scoring many pairs then costs no per-pair side or implicit sums."""
        if self.training or torch.is_grad_enabled():
            return None
        if getattr(self, "_tables", None) is None:
            self._tables = (self._all_rows("user"), self._all_rows("movie"))
        return self._tables

    def user_rows(self, idx: torch.Tensor) -> torch.Tensor:
        tables = self._inference_tables()
        return self._user_rows(idx) if tables is None else tables[0][idx]

    def movie_rows(self, idx: torch.Tensor) -> torch.Tensor:
        tables = self._inference_tables()
        return self._movie_rows(idx) if tables is None else tables[1][idx]

    def effective_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every user row and every movie row, side information and implicit terms
        included (for export: the same neighbour lists as at training)."""
        return self._all_rows("user"), self._all_rows("movie")

    # --- scores --------------------------------------------------------------------------
    def logits_from_rows(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        uc, mc = self.ucols, self.mcols
        z = self.mlp(torch.cat([u[..., uc["embedding"]], m[..., mc["embedding"]]], -1))
        z = z.squeeze(-1)
        if self.config.factors:
            z = z + (u[..., uc["factors"]] * m[..., mc["factors"]]).sum(-1)
        if self.config.use_bias:
            z = z + self.global_bias + u[..., uc["bias"]].squeeze(-1)
            z = z + m[..., mc["bias"]].squeeze(-1)
        return z

    def rating_from_logits(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.bounded:
            return c.rating_min + (c.rating_max - c.rating_min) * torch.sigmoid(z)
        return z

    def rank_logits_from_rows(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The ranking head: how likely the user is to pick this movie (a logit)."""
        uc, mc = self.ucols, self.mcols
        return (u[..., uc["rank"]] * m[..., mc["rank"]]).sum(-1) + m[..., mc["rank_bias"]].squeeze(
            -1
        )

    def forward(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        """The unclipped rating (what the training loss sees)."""
        u, m = self.user_rows(user_idx), self.movie_rows(movie_idx)
        return self.rating_from_logits(self.logits_from_rows(u, m))

    def predict(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        """Ratings clipped to the rating scale: what metrics, export and the scorer see."""
        c = self.config
        return self.forward(user_idx, movie_idx).clamp(c.rating_min, c.rating_max)

    def predict_with_rank(
        self, user_idx: torch.Tensor, movie_idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rating, rank_score)``; without a ranking head the score is the rating."""
        c = self.config
        u, m = self.user_rows(user_idx), self.movie_rows(movie_idx)
        rating = self.rating_from_logits(self.logits_from_rows(u, m)).clamp(
            c.rating_min, c.rating_max
        )
        if not c.rank_factors:
            return rating, rating
        return rating, self.rank_logits_from_rows(u, m) + self.rank_mix * rating

    @torch.no_grad()
    def score_catalog(
        self, user_idx: torch.Tensor, chunk: int = 1 << 15
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rating, rank_score)`` of each user in ``user_idx`` against every movie, each
        ``[len(user_idx), n_movies]``: :meth:`predict_with_rank` of every pair, with the MLP's
        first layer applied to each side once (it is linear in the concatenated rows) and
        the dot products as matrix products, instead of gathering both rows per pair.
        The hidden activations are formed ``chunk`` pairs at a time, so they stay in cache
        (a 76 x 26k-movie block at once made ReLU alone 9 s of 20)."""
        c, uc, mc = self.config, self.ucols, self.mcols
        self.eval()
        tables = self._inference_tables()
        users, movies = tables[0][user_idx], tables[1]
        first, d = self.mlp[0], c.embedding_dim
        user_first = users[:, uc["embedding"]] @ first.weight[:, :d].T
        movie_first = movies[:, mc["embedding"]] @ first.weight[:, d:].T + first.bias
        z = torch.empty(len(user_idx), c.n_movies)
        step = max(1, chunk // max(len(user_idx), 1))
        for s in range(0, c.n_movies, step):
            hidden = user_first.unsqueeze(1) + movie_first[s : s + step].unsqueeze(0)
            z[:, s : s + step] = self.mlp[1:](hidden).squeeze(-1)
        if c.factors:
            z += users[:, uc["factors"]] @ movies[:, mc["factors"]].T
        if c.use_bias:
            z += (self.global_bias + users[:, uc["bias"]]) + movies[:, mc["bias"]].T
        rating = self.rating_from_logits(z).clamp(c.rating_min, c.rating_max)
        if not c.rank_factors:
            return rating, rating
        rank = users[:, uc["rank"]] @ movies[:, mc["rank"]].T + movies[:, mc["rank_bias"]].T
        return rating, rank + self.rank_mix * rating

    # --- regularisation --------------------------------------------------------------------
    def dense_parameters(self) -> list[nn.Parameter]:
        """Parameters shared by every pair (MLP, side projections): weight decay applies."""
        params = list(self.mlp.parameters())
        for part in (self.user_side, self.movie_side):
            if part is not None:
                params += list(part.parameters())
        if not self.sparse:
            for table in (self.user_implicit, self.movie_implicit):
                if table is not None:
                    params += list(table.parameters())
        return params

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Per-row tables with sparse gradients (empty for the notebook's network)."""
        if not self.sparse:
            return []
        tables = (self.user_table, self.movie_table, self.user_implicit, self.movie_implicit)
        return [t.weight for t in tables if t is not None]


def seed_config(
    n_users: int, n_movies: int, rating_min: float, rating_max: float, global_mean: float
) -> ModelConfig:
    """The notebook's exact network (``movierec.train.config``'s seed definition)."""
    from movierec.train.config import NETWORKS, SEED_PRESET

    return ModelConfig(
        n_users=n_users,
        n_movies=n_movies,
        arch="seed",
        embedding_dim=SEED_PRESET["embedding_dim"],
        hidden=tuple(SEED_PRESET["hidden"]),
        factors=SEED_PRESET["factors"],
        rank_factors=SEED_PRESET["rank_factors"],
        rating_min=rating_min,
        rating_max=rating_max,
        global_mean=global_mean,
        **NETWORKS["seed"],
    )
