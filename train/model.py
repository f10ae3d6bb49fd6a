"""``RecommenderNet``: user and movie embeddings -> MLP -> one rating.

One class covers both architectures so that export and scoring see one contract
(a user index and a movie index in, one rating out):

* ``seed``: the notebook's network: embeddings of 100, Linear 128 -> ReLU -> Linear 64
  -> ReLU -> Linear 1, unbounded output.
* ``hybrid`` (default): an MLP branch over its own concatenated user and movie
  embeddings, beside a matrix-factorisation branch (a dot product of wider factors),
  a global bias and user and movie biases, squashed into the rating scale by a scaled
  sigmoid. Giving the MLP its own embeddings keeps it from overfitting the factors
  that the dot product relies on (as in NeuMF).
"""

from __future__ import annotations

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
    factors: int = 128  # dot-product branch width; 0 disables the branch
    use_bias: bool = True
    bounded: bool = True
    rating_min: float = 1.0
    rating_max: float = 5.0
    global_mean: float = 3.5
    init_std: float = 0.05

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", ()))
        return cls(**d)


class RecommenderNet(nn.Module):
    """Predicts the rating of ``movie_idx`` by ``user_idx`` (both int64, shape [batch])."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embedding_dim
        self.user_embedding = nn.Embedding(config.n_users, d)
        self.movie_embedding = nn.Embedding(config.n_movies, d)
        layers: list[nn.Module] = []
        width = 2 * d
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        if config.factors:
            self.user_factors = nn.Embedding(config.n_users, config.factors)
            self.movie_factors = nn.Embedding(config.n_movies, config.factors)
        if config.use_bias:
            self.user_bias = nn.Embedding(config.n_users, 1)
            self.movie_bias = nn.Embedding(config.n_movies, 1)
            self.global_bias = nn.Parameter(torch.tensor([self._initial_offset()]))
        self._reset_parameters()

    def _initial_offset(self) -> float:
        c = self.config
        if not c.bounded:
            return c.global_mean
        span = c.rating_max - c.rating_min
        p = min(max((c.global_mean - c.rating_min) / span, 1e-3), 1 - 1e-3)
        return float(torch.logit(torch.tensor(p)))

    def _reset_parameters(self) -> None:
        std = self.config.init_std
        nn.init.normal_(self.user_embedding.weight, std=std)
        nn.init.normal_(self.movie_embedding.weight, std=std)
        if self.config.arch == "seed":
            return  # the notebook's Linear layers keep PyTorch's defaults
        if self.config.factors:
            nn.init.normal_(self.user_factors.weight, std=std)
            nn.init.normal_(self.movie_factors.weight, std=std)
        if self.config.use_bias:
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.movie_bias.weight)
        # The last layer starts at zero so the MLP branch begins as a no-op around the biases.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def logits(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        """The pre-squash score (equal to the rating for unbounded architectures)."""
        p = self.user_embedding(user_idx)
        q = self.movie_embedding(movie_idx)
        z = self.mlp(torch.cat([p, q], dim=-1)).squeeze(-1)
        if self.config.factors:
            z = z + (self.user_factors(user_idx) * self.movie_factors(movie_idx)).sum(-1)
        if self.config.use_bias:
            z = z + self.global_bias + self.user_bias(user_idx).squeeze(-1)
            z = z + self.movie_bias(movie_idx).squeeze(-1)
        return z

    def forward(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        z = self.logits(user_idx, movie_idx)
        if self.config.bounded:
            c = self.config
            return c.rating_min + (c.rating_max - c.rating_min) * torch.sigmoid(z)
        return z

    def predict(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        """Ratings clipped to the rating scale: what metrics, export and the scorer see."""
        c = self.config
        return self.forward(user_idx, movie_idx).clamp(c.rating_min, c.rating_max)

    def user_tables(self) -> list[nn.Embedding]:
        return [
            t
            for t in (
                self.user_embedding,
                getattr(self, "user_factors", None),
                getattr(self, "user_bias", None),
            )
            if t is not None
        ]

    def movie_tables(self) -> list[nn.Embedding]:
        return [
            t
            for t in (
                self.movie_embedding,
                getattr(self, "movie_factors", None),
                getattr(self, "movie_bias", None),
            )
            if t is not None
        ]

    def embedding_penalty(self, user_idx: torch.Tensor, movie_idx: torch.Tensor) -> torch.Tensor:
        """Mean squared norm of the table rows this batch used (regularisation per occurrence).

        Frequent users and movies are regularised more often, as in SGD matrix
        factorisation, instead of every row decaying at every step as weight decay does.
        """
        pen = sum(t(user_idx).pow(2).sum(-1) for t in self.user_tables())
        pen = pen + sum(t(movie_idx).pow(2).sum(-1) for t in self.movie_tables())
        return pen.mean()


def seed_config(
    n_users: int, n_movies: int, rating_min: float, rating_max: float, global_mean: float
) -> ModelConfig:
    """The notebook's exact network (embeddings initialised N(0, 0.01))."""
    return ModelConfig(
        n_users=n_users,
        n_movies=n_movies,
        arch="seed",
        embedding_dim=100,
        hidden=(128, 64),
        factors=0,
        use_bias=False,
        bounded=False,
        rating_min=rating_min,
        rating_max=rating_max,
        global_mean=global_mean,
        init_std=0.01,
    )
