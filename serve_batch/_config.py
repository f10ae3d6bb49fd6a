"""The configuration of a scoring run, in three parts validated where they are built:

* :class:`ScoreJob`: what to score and where the results go (the same whatever runs it);
* :class:`RuntimeOptions`: how this process scores (batch size, threads, onnxruntime);
* :class:`RayOptions`: the Ray engine's cluster and actors (``None``: the local engine).

:class:`ScoreConfig` holds the three; the CLI builds it and the library only reads it.
Errors name parameters as Python spells them (``top_k``); ``rec-score`` shows its flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from movierec.serve_batch import contract
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch.errors import UsageError

#: What to do with a pair whose user or movie is absent from the ID mapping.
UNKNOWN_POLICIES = ("fallback", "skip", "error")
#: ``graph_opt`` values, mapped to onnxruntime's GraphOptimizationLevel.
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
#: Rows per record batch read, scored and written together (onnxruntime calls take at
#: most ``movierec.serve_batch._session.RUN_ROWS`` of them at a time).
DEFAULT_BATCH_SIZE = 65536
#: Top-k of catalog mode when ``top_k`` is not given.
DEFAULT_CATALOG_TOP_K = 10
#: Engines: this process, or a Ray Data job (``movierec.serve_batch._ray``).
ENGINES = ("local", "ray")
#: How the scoring threads are used: "calls" runs that many single-threaded onnxruntime
#: calls side by side; "intra" gives one call that many intra-op threads. Measured on 2
#: cores (bench/tune_ort.py): 2 calls side by side 5.55-6.19 M pairs/s, 2 intra-op
#: threads 2.49-4.42 (1024-65536 pairs per call), 1 thread 3.07-3.60.
PARALLELISM = ("calls", "intra")


def _refuse(template: str, *params: str) -> UsageError:
    return UsageError(template, params=params)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise _refuse(f"{{{name}}} must be one of {', '.join(allowed)}, got {value!r}", name)


@dataclass(frozen=True)
class ScoreJob:
    """What one scoring run reads and writes; the outputs do not depend on anything else.

    ``top_k=None``: no top-k table in pairs mode, ``DEFAULT_CATALOG_TOP_K`` in catalog
    mode (``all_movies``). ``titles`` adds a title column to the top-k table.
    ``user_col`` / ``movie_col`` None: the model's own ID columns (the training data's,
    recorded in ``id_mapping.json``; user_id / movie_id for an older mapping), filled in
    by :meth:`with_model_columns` once the model is loaded.
    """

    input: Path
    output: Path
    artifacts: Path = Path("artifacts")
    user_col: str | None = None
    movie_col: str | None = None
    top_k: int | None = None
    top_k_output: Path | None = None
    on_unknown: str = "fallback"
    all_movies: bool = False
    exclude: Path | None = None
    titles: bool = False

    def __post_init__(self) -> None:
        for name in ("input", "output", "artifacts", "top_k_output", "exclude"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        _choice("on_unknown", self.on_unknown, UNKNOWN_POLICIES)
        if self.top_k is not None and self.top_k < 1:
            raise _refuse(f"{{top_k}} must be at least 1, got {self.top_k}", "top_k")
        for name in ("user_col", "movie_col"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise _refuse(f"{{{name}}} must name a column, got {value!r}", name)
        if self.user_col is not None and self.user_col == self.movie_col:
            raise _refuse(
                f"{{user_col}} and {{movie_col}} are both {self.user_col!r}",
                "user_col",
                "movie_col",
            )
        if self.all_movies:
            if self.top_k_output is not None:
                raise _refuse(
                    "{top_k_output} does not apply to {all_movies}: {output} is the top-k table",
                    "top_k_output",
                    "all_movies",
                    "output",
                )
            return
        if self.exclude is not None:
            raise _refuse(
                "{exclude} only applies to catalog mode ({all_movies})", "exclude", "all_movies"
            )
        if self.top_k_output is not None and self.top_k is None:
            raise _refuse("{top_k_output} needs {top_k}", "top_k_output", "top_k")
        if self.titles and self.top_k is None:
            raise _refuse(
                "{titles} adds a column to the top-k table: it needs {top_k}", "titles", "top_k"
            )

    def with_model_columns(self, model: IdSchema) -> ScoreJob:
        """This job with the ID columns it left out taken from the model's (``model``:
        the loaded mapping's :class:`IdSchema`)."""
        job = dataclasses.replace(
            self,
            user_col=model.user_col if self.user_col is None else self.user_col,
            movie_col=model.movie_col if self.movie_col is None else self.movie_col,
        )
        if job.user_col == job.movie_col:
            raise _refuse(
                f"{{user_col}} and {{movie_col}} are both {job.user_col!r} (left out, each is "
                f"the model's: {model.user_col!r} and {model.movie_col!r})",
                "user_col",
                "movie_col",
            )
        return job

    def id_schema(self, model: IdSchema) -> IdSchema:
        """The run's ID columns with the model's ID types."""
        job = self.with_model_columns(model)
        return model.renamed(job.user_col, job.movie_col)

    @property
    def id_columns(self) -> tuple[str | None, str | None]:
        return (self.user_col, self.movie_col)

    @property
    def k(self) -> int | None:
        """K of the top-k table (catalog mode always has one)."""
        if self.all_movies:
            return self.top_k or DEFAULT_CATALOG_TOP_K
        return self.top_k

    @property
    def model_path(self) -> Path:
        return self.artifacts / contract.MODEL_FILE

    @property
    def mapping_path(self) -> Path:
        return self.artifacts / contract.MAPPING_FILE


@dataclass(frozen=True)
class RuntimeOptions:
    """How this process scores; none of it changes a result.

    ``threads=0``: one scoring thread per core. ``parallelism="calls"`` runs that many
    single-threaded onnxruntime calls side by side (measured faster than intra-op
    threads, see :data:`PARALLELISM`). ``overlap_io`` reads the input ahead and writes
    the output on threads of their own while batches are scored (bench/score.py).
    """

    batch_size: int = DEFAULT_BATCH_SIZE
    threads: int = 0
    graph_opt: str = "all"
    parallelism: str = "calls"
    overlap_io: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise _refuse(f"{{batch_size}} must be at least 1, got {self.batch_size}", "batch_size")
        if self.threads < 0:
            raise _refuse(
                f"{{threads}} must be 0 (one per core) or more, got {self.threads}", "threads"
            )
        _choice("graph_opt", self.graph_opt, GRAPH_OPT_LEVELS)
        _choice("parallelism", self.parallelism, PARALLELISM)


@dataclass(frozen=True)
class RayOptions:
    """The Ray engine: the cluster (``address`` None: ``$RAY_ADDRESS``, else a local
    instance), the scoring ``actors`` (None: as many as the cluster's CPUs allow) and the
    onnxruntime threads (and CPUs reserved) of each."""

    address: str | None = None
    actors: int | None = None
    threads_per_actor: int = 1
    #: rows one read task takes (whole Parquet row groups, so at least one); a read
    #: task's blocks go to one actor at a time, so row groups and files set the
    #: parallelism of pairs mode
    rows_per_task: int = 1 << 18

    @classmethod
    def for_engine(cls, engine: str, **options: Any) -> RayOptions | None:
        """The Ray options of ``engine`` ("ray"), or None for the local engine, which
        refuses any option of Ray's set to other than its default."""
        _choice("engine", engine, ENGINES)
        if engine == "ray":
            return cls(**options)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        given = [name for name, value in options.items() if value != defaults[name]]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            names = ", ".join("{" + g + "}" for g in given)
            raise _refuse(f"{names} only {verb} to {{engine}} ray", *given, "engine")
        return None

    def plan_actors(self, cpus: float, blocks: int | None = None) -> int:
        """Actors on a cluster of ``cpus``: N x T never exceeds them, and never more
        actors than ``blocks``."""
        t = self.threads_per_actor
        if cpus < t:
            raise _refuse(
                f"{{threads_per_actor}} {t} needs {t} CPUs per actor, but the Ray cluster "
                f"has {cpus:g}",
                "threads_per_actor",
            )
        most = int(cpus // t)
        if self.actors is not None and self.actors > most:
            raise _refuse(
                f"{{actors}} {self.actors} x {{threads_per_actor}} {t} = {self.actors * t} "
                f"CPUs, but the Ray cluster has {cpus:g}; lower {{actors}} or "
                "{threads_per_actor}",
                "actors",
                "threads_per_actor",
            )
        n = self.actors or most
        return max(1, n if blocks is None else min(n, blocks))

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise _refuse(f"{{actors}} must be at least 1, got {self.actors}", "actors")
        if self.rows_per_task < 1:
            raise _refuse(
                f"{{rows_per_task}} must be at least 1, got {self.rows_per_task}", "rows_per_task"
            )
        if self.threads_per_actor < 1:
            raise _refuse(
                f"{{threads_per_actor}} must be at least 1, got {self.threads_per_actor}",
                "threads_per_actor",
            )


@dataclass(frozen=True)
class ScoreConfig:
    """Everything one ``rec-score`` run needs; saved in the run manifest.

    ``ray`` None runs the local engine; :class:`RayOptions` runs a Ray Data job.
    """

    job: ScoreJob
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    ray: RayOptions | None = None

    def __post_init__(self) -> None:
        if self.ray is not None and self.runtime.threads:
            raise _refuse(
                "{threads} sets the local engine's onnxruntime threads; with the Ray engine "
                "use {threads_per_actor} (and {actors})",
                "threads",
                "threads_per_actor",
                "actors",
            )

    @classmethod
    def build(
        cls, input: Path | str, output: Path | str, *, engine: str = "local", **options: Any
    ) -> ScoreConfig:
        """A configuration from keyword options, each routed to its part (``top_k`` to the
        job, ``threads`` to the runtime, ``actors`` to the Ray options, ...). Options of
        the Ray engine need ``engine="ray"``."""
        _choice("engine", engine, ENGINES)
        parts: dict[type, dict[str, Any]] = {ScoreJob: {}, RuntimeOptions: {}, RayOptions: {}}
        owner = {f.name: kind for kind in parts for f in dataclasses.fields(kind)}
        for name, value in options.items():
            if name not in owner or name in ("input", "output"):
                raise UsageError(
                    f"unknown scoring option {name!r}; expected one of {', '.join(sorted(owner))}"
                )
            parts[owner[name]][name] = value
        return cls(
            job=ScoreJob(input=Path(input), output=Path(output), **parts[ScoreJob]),
            runtime=RuntimeOptions(**parts[RuntimeOptions]),
            ray=RayOptions.for_engine(engine, **parts[RayOptions]),
        )

    @property
    def engine(self) -> str:
        return "local" if self.ray is None else "ray"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (paths as strings) for the manifest."""

        def plain(part: Any) -> dict[str, Any] | None:
            if part is None:
                return None
            return {
                f.name: (str(v) if isinstance(v, Path) else v)
                for f in dataclasses.fields(part)
                for v in [getattr(part, f.name)]
            }

        return {
            "job": plain(self.job),
            "runtime": plain(self.runtime),
            "engine": self.engine,
            "ray": plain(self.ray),
        }
