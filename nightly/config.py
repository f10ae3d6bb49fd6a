"""``NightlyConfig``: the one configuration of ``rec-nightly``, built by the CLI."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movierec.db._uri import is_database_uri, parse_database_uri
from movierec.serve_batch._config import RayOptions, ScoreJob
from movierec.serve_batch.errors import UsageError
from movierec.train.config import TrainConfig

if TYPE_CHECKING:
    from movierec.db import DatabaseURI

#: How to install the Ray engine (the same words as rec-score's).
RAY_HINT = 'pip install "movierec[ray]"'
DEFAULT_TOP_K = 20
DEFAULT_KEEP = 7
#: The gate's default tolerances: how much worse than the model in service a candidate
#: may score on its holdout (test RMSE up, NDCG@10 down) and still be published.
DEFAULT_MAX_RMSE_INCREASE = 0.01
DEFAULT_MAX_NDCG_DROP = 0.01
#: The data gate's default: the largest shrink of the ratings, users or movies since the
#: last published run that still trains (a truncated export loses far more).
DEFAULT_MAX_DATA_DROP = 0.1
#: The view ``--publish`` switches (its versions' tables are ``<name>_<VERSION>``).
DEFAULT_PUBLISH_TABLE = "recommendations"


@dataclass(frozen=True)
class NightlyConfig:
    """One nightly run: the data, the home folder it publishes into, and each stage's say.

    ``train`` is ``rec-train``'s configuration (its ``artifacts`` folder is chosen by the
    run); ``users`` None means every user in the data; ``data`` None is resolved as
    ``rec-train`` resolves it (``$MOVIEREC_DATA``, else the cached ml-100k download);
    ``metrics_file``: a Prometheus textfile written after every run.
    """

    data: Path | str | None  # a database URI is kept as text (it may hold a password)
    home: Path
    train: TrainConfig = field(default_factory=TrainConfig)
    users: Path | None = None
    top_k: int = DEFAULT_TOP_K
    titles: bool = False
    keep: int = DEFAULT_KEEP
    max_rmse_increase: float = DEFAULT_MAX_RMSE_INCREASE
    max_ndcg_drop: float = DEFAULT_MAX_NDCG_DROP
    max_data_drop: float = DEFAULT_MAX_DATA_DROP
    metrics_file: Path | None = None
    refit: bool = True
    #: Where the refit starts: "evaluated" (the evaluation run's weights) or "scratch" (a
    #: new network for the best epoch count); None: by data size (``refit.default_start``).
    refit_from: str | None = None
    force: bool = False
    ray: RayOptions | None = None  # None: score with the local engine
    quiet: bool = False
    publish: DatabaseURI | None = None  # also publish into this database
    publish_table: str = DEFAULT_PUBLISH_TABLE

    @property
    def engine(self) -> str:
        return "local" if self.ray is None else "ray"

    def check(self) -> None:
        """Refuse settings that cannot work, naming the option and the value received."""
        if self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, got {self.top_k}")
        if self.keep < 1:
            raise UsageError(f"--keep must be at least 1 (the version in service), got {self.keep}")
        for name in ("max_rmse_increase", "max_ndcg_drop"):
            value = getattr(self, name)
            if not value >= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more, got {value!r}")
        if not 0 <= self.max_data_drop <= 1:
            raise UsageError(
                f"{{max_data_drop}} must be between 0 and 1, got {self.max_data_drop!r}",
                params=("max_data_drop",),
            )
        if self.metrics_file is not None:
            from movierec.nightly._metrics_file import check_metrics_path

            check_metrics_path(self.metrics_file)
        # the scoring stage's checks, now rather than after training
        ScoreJob(
            input=self.users or Path("users.parquet"),
            output=Path("recommendations.parquet"),
            all_movies=True,
            top_k=self.top_k,
        )
        if self.ray is not None and importlib.util.find_spec("ray") is None:
            raise UsageError(f"{{engine}} ray needs Ray: {RAY_HINT}", params=("engine",))
        if self.publish is not None:
            from movierec.db import check_drivers
            from movierec.db._names import TableName, version_table

            check_drivers(self.publish)
            version_table(TableName.parse(self.publish_table), "20250101T000000Z-99")
        self.train.check()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy for the run report."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, TrainConfig):
                value = value.to_dict()
                value.pop("artifacts")  # each run trains in its own scratch folder
            elif isinstance(value, RayOptions):
                value = dataclasses.asdict(value)
            elif isinstance(value, Path):
                value = str(value)
            elif name == "publish" and value is not None:
                value = str(value)  # the URI without its password
            elif name == "data" and is_database_uri(value):
                value = str(parse_database_uri(value))  # never the password
            out[name] = value
        out["engine"] = self.engine
        return out
