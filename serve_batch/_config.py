"""The one configuration object of a scoring run (built by the CLI, read by the library)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from movierec.serve_batch import contract
from movierec.serve_batch.errors import UsageError

#: What to do with a pair whose user or movie is absent from the ID mapping.
UNKNOWN_POLICIES = ("fallback", "skip", "error")
#: ``--graph-opt`` values, mapped to onnxruntime's GraphOptimizationLevel.
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
#: Rows per record batch read, scored and written together (onnxruntime calls take at
#: most ``movierec.serve_batch._session.RUN_ROWS`` of them at a time).
DEFAULT_BATCH_SIZE = 65536
#: Top-k of catalog mode when ``--top-k`` is not given.
DEFAULT_CATALOG_TOP_K = 10
#: ``--engine`` values: this process, or a Ray Data job (``movierec.serve_batch._ray``).
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ScoreConfig:
    """Everything one ``rec-score`` run needs; saved verbatim in the run manifest.

    ``threads=0``: one scoring thread per core (each runs single-threaded onnxruntime
    calls; measured faster than intra-op threads, see ``movierec.serve_batch._session``).
    ``top_k=None`` means no top-k table in pairs mode and 10 in catalog mode.
    """

    input: Path
    output: Path
    artifacts: Path = Path("artifacts")
    user_col: str = contract.USER_COL
    movie_col: str = contract.MOVIE_COL
    top_k: int | None = None
    top_k_output: Path | None = None
    on_unknown: str = "fallback"
    batch_size: int = DEFAULT_BATCH_SIZE
    threads: int = 0
    graph_opt: str = "all"
    quiet: bool = False
    all_movies: bool = False
    exclude: Path | None = None
    # top-k tables gain a title column from the ID mapping
    titles: bool = False
    # --engine ray only: cluster address (None: a local Ray instance), actors (None: as
    # many as the cluster's CPUs allow) and onnxruntime threads per actor
    engine: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1

    @property
    def model_path(self) -> Path:
        return Path(self.artifacts) / contract.MODEL_FILE

    @property
    def mapping_path(self) -> Path:
        return Path(self.artifacts) / contract.MAPPING_FILE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (paths as strings) for the manifest."""
        return {
            f.name: (str(v) if isinstance(v, Path) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }


def check_config(config: ScoreConfig) -> None:
    """Refuse settings that cannot work, naming the option (the CLI already checks most)."""
    if config.on_unknown not in UNKNOWN_POLICIES:
        raise UsageError(
            f"--unknown must be one of {', '.join(UNKNOWN_POLICIES)}, got {config.on_unknown!r}"
        )
    if config.graph_opt not in GRAPH_OPT_LEVELS:
        raise UsageError(
            f"--graph-opt must be one of {', '.join(GRAPH_OPT_LEVELS)}, got {config.graph_opt!r}"
        )
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.threads < 0:
        raise UsageError(f"--threads must be 0 (one per core) or more, got {config.threads}")
    if config.top_k is not None and config.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {config.top_k}")
    if config.user_col == config.movie_col:
        raise UsageError(f"--user-col and --movie-col are both {config.user_col!r}")
    _check_engine(config)
    if config.all_movies:
        if config.top_k_output is not None:
            raise UsageError(
                "--top-k-output does not apply to --all-movies: OUTPUT is the top-k table"
            )
    else:
        if config.exclude is not None:
            raise UsageError("--exclude only applies to catalog mode (--all-movies)")
        if config.top_k_output is not None and config.top_k is None:
            raise UsageError("--top-k-output needs --top-k K")
        if config.titles and config.top_k is None:
            raise UsageError("--titles adds a column to the top-k table: it needs --top-k K")


def _check_engine(config: ScoreConfig) -> None:
    if config.engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, got {config.engine!r}")
    if config.engine == "ray":
        if config.workers is not None and config.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {config.workers}")
        if config.threads_per_worker < 1:
            raise UsageError(
                f"--threads-per-worker must be at least 1, got {config.threads_per_worker}"
            )
        if config.threads:
            raise UsageError(
                "--threads sets the local engine's onnxruntime threads; with --engine ray "
                "use --threads-per-worker (and --workers)"
            )
        return
    given = [
        name
        for name, is_set in (
            ("--ray-address", config.ray_address is not None),
            ("--workers", config.workers is not None),
            ("--threads-per-worker", config.threads_per_worker != 1),
        )
        if is_set
    ]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise UsageError(f"{', '.join(given)} only {verb} to --engine ray")
    for role, path in (("INPUT", config.input), ("--exclude", config.exclude)):
        if path is not None and Path(path).is_dir():
            raise UsageError(
                f"{path}: {role} is a folder; folders of Parquet files need --engine ray"
            )
