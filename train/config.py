"""``TrainConfig``: the one configuration of ``rec-train``, built by the CLI."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from movierec.db._uri import is_database_uri, parse_database_uri
from movierec.serve_batch.errors import UsageError
from movierec.train.data import Columns

#: The kinds of split (``--split``, ``movierec.train.split``).
SPLITS = ("random", "time", "user-time")
#: Splits that order ratings by time (the data needs a time column).
TIME_SPLITS = ("time", "user-time")

#: The seed network (the notebook's), defined once here: what it fixes (no
#: dot-product branch, ranking head or implicit terms; options setting them otherwise
#: are refused) ...
SEED_FIXED: dict = dict(factors=0, rank_factors=0, rank_weight=0.0, implicit=False)
#: ... and its shape and training settings (the preset of ``--arch seed``).
SEED_PRESET: dict = dict(
    # The notebook: Adam 5e-4, batch 64, MSE, 6 epochs, best-validation checkpoint.
    epochs=6,
    batch_size=64,
    lr=5e-4,
    embedding_dim=100,
    hidden=(128, 64),
    reg=0.0,
    weight_decay=0.0,
    patience=0,
    side_features=False,
    ema=0.0,
    refit_validation=False,  # the notebook trained on the training part only
    **SEED_FIXED,
)

#: Per-architecture defaults; an explicit CLI option overrides the preset value.
PRESETS: dict[str, dict] = {
    "seed": SEED_PRESET,
    # The dataclass defaults below: chosen on the validation split of ml-100k, with the
    # options left None filled in by data size (``for_data``).
    "hybrid": dict(),
}
#: What each architecture fixes in the network beyond the options (ModelConfig fields):
#: the seed network has no biases, an unbounded output and N(0, 0.01) embeddings.
NETWORKS: dict[str, dict] = {
    "seed": dict(use_bias=False, bounded=False, init_std=0.01),
    "hybrid": dict(use_bias=True, bounded=True, init_std=0.05),
}

#: Above this many training ratings, options left unset take their large-data values.
#: The implicit terms cost more per rating the more ratings each user and movie has: one
#: core trained 68k rows/s without them and 30k with them on ml-100k (70k training
#: ratings, batch 2048), 77k against 18k at 175k training ratings, 66k against 8.6k at
#: 875k and 48k against 1.5k at 3.5M (synthetic MovieLens-25M-shaped data), so they are
#: the default only where they cost at most about 4x. Larger batches amortise each
#: step's fixed cost: 48k rows/s at batch 2048 against 65-76k at 8192 on 3.5M ratings.
#: With thousands of steps per epoch the validation curve is smooth, so one epoch
#: without improvement ends training (3.5M ratings: validation RMSE 0.8848, 0.8408,
#: 0.8238, 0.8206, 0.8228, 0.8244 per epoch; 875k: patience 1 stopped at the same RMSE
#: to 0.0004, three epochs sooner).
LARGE_DATA_RATINGS = 500_000
#: Ways to fit the ranking head (``TrainConfig.rank_head``).
RANK_HEADS = ("item-item", "bpr")
SMALL_DATA_DEFAULTS = dict(
    implicit=True, batch_size=2048, patience=2, refit_validation=True, ema=0.97
)
LARGE_DATA_DEFAULTS = dict(
    implicit=False, batch_size=8192, patience=1, refit_validation=False, ema=0.0
)


@dataclass(frozen=True)
class TrainConfig:
    """What to train, on what data, and where to put the artifacts."""

    #: The ratings: a file or folder, or a database URI (``postgresql://``, ``sqlite:///``)
    #: with ``table`` or ``query``; None: $MOVIEREC_DATA, else the ml-100k download.
    data: Path | str | None = None
    artifacts: Path = Path("artifacts")
    #: The ratings table's column names (a MovieLens folder keeps its own).
    columns: Columns = field(default_factory=Columns)
    #: Items table with the movies' titles, keyed by ``columns.movie``: a Parquet or CSV
    #: file, or (with a database ``data``) a table of that database.
    items: Path | str | None = None
    #: A table of the database ``data`` names (``NAME`` or ``SCHEMA.NAME``) ...
    table: str | None = None
    #: ... or a ``SELECT`` whose result is the ratings.
    query: str | None = None
    #: How the ratings are split: "random" (the seed notebook's), "time" or "user-time"
    #: (``movierec.train.split``).
    split: str = "random"
    arch: str = "hybrid"
    seed: int = 42
    epochs: int = 40
    batch_size: int | None = None  # None: by data size (see ``for_data``)
    lr: float = 4e-3
    embedding_dim: int = 32
    hidden: tuple[int, ...] = (64,)
    factors: int = 64
    reg: float = 0.05
    weight_decay: float = 1e-3
    patience: int | None = None  # None: by data size (see ``for_data``)
    #: Width of the ranking head (the rank columns of the user and movie tables).
    rank_factors: int = 32
    #: How the ranking head is fit: "item-item", a low-rank EASE solved in closed form
    #: after training (``movierec.train.item_item``); "bpr", trained beside the rating
    #: with a BPR loss weighted by ``rank_weight``. ml-100k's seed split, model seeds
    #: 42-44: test NDCG@10 0.3445 against 0.2802 (README, "Measured quality").
    rank_head: str = "item-item"
    rank_weight: float = 1.0
    #: The item-item head's lambda as a multiple of the mean diagonal of X^T X; None:
    #: chosen on the validation split (``item_item.LAMBDA_GRID``).
    item_item_lambda: float | None = None
    #: Train again on train + validation for the best epoch count before testing, so the
    #: model that is tested and exported knows 85% of the ratings rather than 70% (the
    #: epoch count, lambda and rank mix are still chosen on validation by the first run).
    #: None: by data size (on up to ``LARGE_DATA_RATINGS``, where it cost ml-100k about
    #: 10 s and brought test RMSE from 0.8891 to 0.8811; off above, where it would double
    #: a long training and rec-nightly refits on every rating anyway).
    refit_validation: bool | None = None
    side_features: bool = False
    implicit: bool | None = None  # None: by data size (see ``for_data``)
    #: Movies per user and raters per movie in the implicit sums (a seeded sample where
    #: there are more, weighted to stand for all of them); 0 keeps all. The default binds
    #: on no list of ml-100k and bounds a step's cost where --implicit is forced on big
    #: data (a cap of 64 movies per user cost ml-100k 0.003 NDCG@10, of 64 raters per
    #: movie 0.022).
    implicit_cap: int = 1024
    implicit_movie_cap: int = 1024
    #: Decay per step of the weight average that is evaluated and kept; 0 disables it;
    #: None: by data size. ml-100k, model seeds 42-44, test RMSE (mean): 0.8932 without,
    #: 0.8891 with 0.97 (0.8855 and 0.8811 with the refit on validation). Averaging every
    #: weight each step costs the tables, not the batch: off above LARGE_DATA_RATINGS.
    ema: float | None = None
    test_size: float = 0.3
    #: Users whose top-k rankings are evaluated (test metrics and the rank-mix choice): a
    #: fixed seeded sample where more qualify (ml-100k has 943: all of them); 0: all.
    #: Ranking 2,000 users against 26k movies took about 12 s of one core.
    eval_users: int = 2000
    #: PyTorch CPU threads. One, because a second thread bought little and cost a lot
    #: wherever another process wanted the cores (``bench/train.py --threads-sweep`` on
    #: this project's shared 2-core machine, seconds of fit, 1 thread / 2 threads, the
    #: default of PyTorch here): ml-100k, 2 epochs: 3.2 / 19.9 s, beside a busy-looping
    #: process 5.6 / 63.3 s; 3.5M training ratings, 1 epoch: 37.5 / 35.9 s, beside a
    #: busy-looping process 33.5 / 109.2 s.
    threads: int = 1
    #: Fit the item-item head (its SVDs and lambda grid, which need the ratings, not the
    #: network) on a thread of its own while the network trains on the other core. Off by
    #: default: measured with bench/parallel_head.py (3.5M training ratings) it saved no
    #: time (68.8 s against 67.6 s alone, 67.0 against 68.5 beside a busy process) and
    #: added 0.25 GiB to the peak; the two threads compete for memory bandwidth.
    parallel_head: bool = False
    quiet: bool = False

    @classmethod
    def for_arch(cls, arch: str = "hybrid", **overrides) -> TrainConfig:
        """The preset of ``arch`` with every non-None override applied."""
        if arch not in PRESETS:
            raise UsageError(f"unknown architecture {arch!r}; expected one of {sorted(PRESETS)}")
        values = dict(PRESETS[arch])
        values.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise UsageError(f"unknown training options: {sorted(unknown)}")
        config = cls(arch=arch, **values)
        config.check()
        return config

    def check(self) -> None:
        """Refuse values that cannot train, naming the option and the value received."""

        def bad(name: str, expected: str) -> UsageError:
            return UsageError(
                f"{{{name}}} must be {expected}, got {getattr(self, name)!r}", params=(name,)
            )

        if self.epochs < 1:
            raise bad("epochs", "at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise bad("batch_size", "at least 1")
        if not self.lr > 0:
            raise bad("lr", "positive")
        if self.embedding_dim < 1:
            raise bad("embedding_dim", "at least 1")
        if self.factors < 0:
            raise bad("factors", "0 (no dot-product branch) or more")
        if any(h < 1 for h in self.hidden):
            raise bad("hidden", "a list of positive layer widths")
        if self.arch == "seed":
            for name, fixed in SEED_FIXED.items():
                if getattr(self, name) != fixed:
                    raise UsageError(
                        f"{{{name}}} {getattr(self, name)!r}: {{arch}} seed is the notebook's "
                        f"network, which has no use for it (it fixes {name} = {fixed!r})",
                        params=(name, "arch"),
                    )
        if self.reg < 0 or self.weight_decay < 0:
            raise UsageError(
                "{reg} and {weight_decay} must not be negative", params=("reg", "weight_decay")
            )
        if self.patience is not None and self.patience < 0:
            raise bad("patience", "0 (no early stopping) or more")
        if not 0 < self.test_size < 1:
            raise bad("test_size", "between 0 and 1")
        if self.eval_users < 0:
            raise bad("eval_users", "0 (every user) or more")
        if self.implicit_cap < 0:
            raise bad("implicit_cap", "0 (no cap) or more")
        if self.implicit_movie_cap < 0:
            raise bad("implicit_movie_cap", "0 (no cap) or more")
        if self.threads < 1:
            raise bad("threads", "at least 1")
        if is_database_uri(self.data):
            if (self.table is None) == (self.query is None):
                raise UsageError(
                    "a database as {data} needs {table} NAME or {query} SELECT (one of them)",
                    params=("data", "table", "query"),
                )
        elif self.table is not None or self.query is not None:
            raise UsageError(
                "{table} and {query} read from a database: give {data} a database URI "
                "(postgresql://USER@HOST:PORT/DB or sqlite:///PATH)",
                params=("table", "query", "data"),
            )
        if self.split not in SPLITS:
            raise bad("split", f"one of {', '.join(SPLITS)}")
        if self.rank_head not in RANK_HEADS:
            raise bad("rank_head", f"one of {', '.join(RANK_HEADS)}")
        if self.item_item_lambda is not None and not self.item_item_lambda > 0:
            raise bad("item_item_lambda", "positive")

    def for_data(self, n_train: int) -> TrainConfig:
        """This config with the options left None set for ``n_train`` training ratings:
        ``SMALL_DATA_DEFAULTS`` up to ``LARGE_DATA_RATINGS``, ``LARGE_DATA_DEFAULTS`` above."""
        defaults = LARGE_DATA_DEFAULTS if n_train > LARGE_DATA_RATINGS else SMALL_DATA_DEFAULTS
        unset = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return replace(self, **unset) if unset else self

    def with_(self, **changes) -> TrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready copy for the checkpoint, the metrics and the model's metadata, which
        every rec-score manifest repeats: paths by ``recorded_path``, never absolute."""
        d = asdict(self)
        if is_database_uri(self.data):
            d["data"] = str(parse_database_uri(self.data))  # never the password
            d["items"] = self.items
        else:
            d["data"] = recorded_path(self.data, self.artifacts)
            d["items"] = recorded_path(self.items, self.artifacts)
        d["artifacts"] = recorded_path(self.artifacts, self.artifacts)
        d["columns"] = self.columns.to_dict()
        d["hidden"] = list(self.hidden)
        return d


def recorded_path(path: Path | str | None, artifacts: Path | str) -> str | None:
    """``path`` as provenance records it: as the user gave it when relative, otherwise
    relative to the ``artifacts`` folder (``.`` for that folder itself).

    A model travels to other machines with its metadata; an absolute path would tell
    them this machine's folders (a home directory, a mount) and mean nothing there.
    """
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_absolute():
        return str(path)
    try:
        return os.path.relpath(path, Path(artifacts).expanduser().absolute())
    except ValueError:  # another drive on Windows: no relative path exists
        return path.name
