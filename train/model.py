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
  added to each row. A ranking head (a dot product plus a movie bias, trained on which
  movies users chose to rate) is mixed with the rating into ``rank_score``.

Each side's learned parameters live in one table whose columns are laid out as
``[mlp embedding | factors | bias | rank factors | rank bias]`` (absent parts have
zero width), so the rows a batch uses can be regularised together, per occurrence.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn

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
    implicit_nnz: int = 0  # training pairs behind the implicit terms; 0 disables them

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", ()))
        return cls(**d)

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
        if config.implicit_nnz:
            # SVD++-style implicit feedback on both sides: a user's row gains the scaled sum
            # of vectors of the movies they rated in training, a movie's row the sum of
            # vectors of its raters, each sum scaled by 1/sqrt(count). The rated pairs are
            # held as CSR buffers; the sums are one sparse-dense product per side.
            nnz = config.implicit_nnz
            self.user_implicit = nn.Embedding(config.n_movies, self.ucols["all"].stop)
            self.movie_implicit = nn.Embedding(config.n_users, self.mcols["all"].stop)
            for side, n in (("user", config.n_users), ("movie", config.n_movies)):
                self.register_buffer(f"{side}_csr_indptr", torch.zeros(n + 1, dtype=torch.long))
                self.register_buffer(f"{side}_csr_indices", torch.zeros(nnz, dtype=torch.long))
        else:
            self.user_implicit = self.movie_implicit = None
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
        for side in (self.user_side, self.movie_side, self.user_implicit, self.movie_implicit):
            if side is not None:
                nn.init.zeros_(side.weight)
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
        """Install the training pairs that the implicit terms sum over."""
        c = self.config
        for side, rows, cols, n in (
            ("user", user_idx, movie_idx, c.n_users),
            ("movie", movie_idx, user_idx, c.n_movies),
        ):
            order = torch.argsort(rows * (c.n_users + c.n_movies) + cols)
            counts = torch.bincount(rows, minlength=n)
            getattr(self, f"{side}_csr_indptr").copy_(
                torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
            )
            getattr(self, f"{side}_csr_indices").copy_(cols[order])

    def _csr(self, side: str) -> torch.Tensor:
        """The normalised ``[rows, cols]`` incidence matrix of ``side`` (cheap to build)."""
        indptr = getattr(self, f"{side}_csr_indptr")
        indices = getattr(self, f"{side}_csr_indices")
        lens = indptr[1:] - indptr[:-1]
        values = lens.clamp(min=1).float().rsqrt().repeat_interleave(lens)
        n_cols = self.config.n_movies if side == "user" else self.config.n_users
        return torch.sparse_csr_tensor(indptr, indices, values, (len(indptr) - 1, n_cols))

    @contextlib.contextmanager
    def shared_implicit(self) -> Iterator[None]:
        """Within this block, each side's implicit sums are computed once and reused (one
        training step calls the rows several times with the same weights)."""
        self._implicit_memo = {}
        try:
            yield
        finally:
            self._implicit_memo = None

    def _implicit(self, side: str, idx: torch.Tensor) -> torch.Tensor:
        memo = getattr(self, "_implicit_memo", None)
        if memo is not None and side in memo:
            return memo[side][idx]
        weight = (self.user_implicit if side == "user" else self.movie_implicit).weight
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            table = self._csr(side) @ weight
        if memo is not None:
            memo[side] = table
        return table[idx]

    # --- rows --------------------------------------------------------------------------
    def _user_rows(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.user_table(idx)
        if self.user_side is not None:
            rows = rows + self.user_side(self.user_features[idx])
        if self.user_implicit is not None:
            rows = rows + self._implicit("user", idx)
        return rows

    def _movie_rows(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.movie_table(idx)
        if self.movie_side is not None:
            rows = rows + self.movie_side(self.movie_features[idx])
        if self.movie_implicit is not None:
            rows = rows + self._implicit("movie", idx)
        return rows

    def train(self, mode: bool = True) -> RecommenderNet:
        self._tables = None  # weights may change: forget the cached rows
        return super().train(mode)

    def _inference_tables(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """In eval mode without autograd, every row is computed once and then gathered:
        scoring many pairs then costs no per-pair side or implicit sums."""
        if self.training or torch.is_grad_enabled():
            return None
        if getattr(self, "_tables", None) is None:
            self._tables = (
                self._user_rows(torch.arange(self.config.n_users)),
                self._movie_rows(torch.arange(self.config.n_movies)),
            )
        return self._tables

    def user_rows(self, idx: torch.Tensor) -> torch.Tensor:
        tables = self._inference_tables()
        return self._user_rows(idx) if tables is None else tables[0][idx]

    def movie_rows(self, idx: torch.Tensor) -> torch.Tensor:
        tables = self._inference_tables()
        return self._movie_rows(idx) if tables is None else tables[1][idx]

    def effective_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every user row and every movie row, side information included (for export)."""
        return (
            self._user_rows(torch.arange(self.config.n_users)),
            self._movie_rows(torch.arange(self.config.n_movies)),
        )

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

    # --- regularisation --------------------------------------------------------------------
    def embedding_penalty(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        """Mean squared norm of the table rows this batch used (regularisation per occurrence).

        Frequent users and movies are regularised more often, as in SGD matrix
        factorisation, instead of every row decaying at every step as weight decay does.
        """
        pen = self.user_table(user_idx).pow(2).sum(-1) + self.movie_table(movie_idx).pow(2).sum(-1)
        return pen.mean()

    def dense_parameters(self) -> list[nn.Parameter]:
        """Parameters shared by every pair (MLP, side projections): weight decay applies."""
        params = list(self.mlp.parameters())
        for side in (self.user_side, self.movie_side, self.user_implicit, self.movie_implicit):
            if side is not None:
                params += list(side.parameters())
        return params


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
