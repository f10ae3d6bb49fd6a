"""The Ray engine (``engine="ray"``): the per-block functions on Ray Data actors.

Imported only for the Ray engine, and Ray itself only inside the functions, so
``serve_batch`` never needs Ray (it is the optional extra ``pip install "movierec[ray]"``).
:class:`RayExecutor` has the local executor's interface (``movierec.serve_batch._executors``):
the driver gives it the same per-block function and the same parts, and Ray Data runs
everything: a read task per part, ``map_batches`` on a fixed pool of actors, and the
driver consuming the results. There is no scheduler, queue or process pool of our own.

* Read: one task per part (a run of Parquet row groups, or a CSV file) yields the part's
  blocks, read and checked by the local engine's code (errors name the file and row).
* Score: each actor builds one onnxruntime session in ``__init__`` with
  :func:`load_artifacts`, from the artifact bytes the driver shipped (the mapping hash is
  verified), and calls the per-block function once per block.
* Blocks and results travel pickled, one per row of a binary column (Arrow tables
  pickle as their buffers), so any block or result type runs unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from movierec.serve_batch import contract
from movierec.serve_batch._arrow import pickled_table, unpickled
from movierec.serve_batch._artifacts import Artifacts, load_artifacts
from movierec.serve_batch._config import RayOptions, ScoreConfig
from movierec.serve_batch.errors import (
    ArtifactError,
    Interrupted,
    MovieRecError,
    UsageError,
)

log = logging.getLogger(__name__)

#: What the Ray engine tells a user whose environment lacks Ray.
RAY_INSTALL_HINT = 'pip install "movierec[ray]" (or: pip install "ray[data]>=2.9")'
#: Ray Data fails the job instead of waiting longer than this for the actor pool to
#: start (e.g. when the cluster has no room for it) or for any progress at all.
ACTOR_START_TIMEOUT_S = 300
NO_PROGRESS_TIMEOUT_S = 600
#: Restarts of a dead actor and retries of its calls. None: a worker that dies fails the
#: job at once with a clear error (Ray Data's default would restart it for ever). A
#: nightly job is simply rerun; its output is all or nothing.
MAX_ACTOR_RESTARTS = 0
MAX_TASK_RETRIES = 0
#: Artifact files shipped to the actors: the mapping and every ONNX graph (with
#: external data) of the artifacts folder.
SHIPPED_SUFFIXES = (".onnx", ".onnx.data")


class RayJobError(MovieRecError):
    """The Ray job failed outside the input: a worker died, the cluster stalled."""


def import_ray() -> Any:
    """``ray`` with Ray Data, or ``UsageError`` saying how to install the extra."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"{{engine}} ray needs Ray, which is not installed ({exc}); install it with "
            f"{RAY_INSTALL_HINT}",
            params=("engine",),
        ) from exc
    return ray


class RayExecutor:
    """Maps a per-block function over blocks on a pool of Ray Data actors."""

    def __init__(self, ray: Any, config: ScoreConfig, arts: Artifacts, cluster: dict) -> None:
        self.ray, self.config, self.arts = ray, config, arts
        self.options: RayOptions = config.ray or RayOptions()
        self.info: dict[str, Any] = {"name": "ray", **cluster}
        self.actors = self.options.plan_actors(cluster["cluster_cpus"])
        self.busy = 0.0

    @classmethod
    @contextlib.contextmanager
    def start(cls, config: ScoreConfig, arts: Artifacts) -> Iterator[RayExecutor]:
        """Join or start the cluster for the run; errors of the job come out as the
        user's own (bad input) or :class:`RayJobError`."""
        ray = import_ray()
        with _ray_cluster(ray, config) as cluster:
            try:
                yield cls(ray, config, arts, cluster)
            except Exception as exc:
                _reraise_job_error(exc)

    def map(
        self, fn: Any, parts: Iterable[Any], read: Any = None, ordered: bool = True
    ) -> Iterator[Any]:
        ray = self.ray
        parts = list(parts)
        if not parts:
            return
        quiet = self.config.runtime.quiet
        with _data_context(ray, quiet, preserve_order=ordered):
            if read is None:
                ds = ray.data.from_arrow([pickled_table([p]) for p in parts])
            else:
                ds = ray.data.read_datasource(
                    _parts_source(parts, read),
                    override_num_blocks=len(parts),
                    # reading is light next to scoring; 0 CPUs lets the reads run beside
                    # an actor pool that holds every CPU (else they would wait for ever)
                    **_named_or_remote_args(ray.data.read_datasource, num_cpus=0),
                )
                self.info["read_tasks"] = len(parts)
            ds = self._map_on_actors(ds, fn, blocks=len(parts))
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for result in unpickled(table):
                    self.busy += getattr(result, "busy_seconds", 0.0)
                    yield result

    def _map_on_actors(self, ds: Any, fn: Any, blocks: int) -> Any:
        """``map_batches`` on a fixed pool of actors, each with T onnxruntime threads
        (``blocks``: the input bundles, at least; no more actors than that)."""
        t = self.options.threads_per_actor
        actors = self.options.plan_actors(self.info["cluster_cpus"], blocks)
        shipped = _ship_artifacts(self.ray, self.config, self.arts)
        self.info.update(
            actors=actors,
            threads_per_actor=t,
            blocks=blocks,
            artifacts_shipped=sorted(shipped.files),
        )
        with warnings.catch_warnings():
            # actor options are not named parameters of map_batches in every Ray release
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            return ds.map_batches(
                _Actor,
                fn_constructor_args=(shipped, fn, t, self.config.job.all_movies),
                batch_size=None,  # one call per block
                batch_format="pyarrow",
                compute=self.ray.data.ActorPoolStrategy(size=actors),
                num_cpus=t,
                max_restarts=MAX_ACTOR_RESTARTS,
                max_task_retries=MAX_TASK_RETRIES,
            )

    def describe(self) -> dict[str, Any]:
        return {
            **self.info,
            "actor_busy_seconds": round(self.busy, 3),
            "runtime": {
                "intra_op_threads": self.options.threads_per_actor,
                "execution_mode": "ray data, actor pool",
            },
        }


class _Actor:
    """One onnxruntime session per actor, built once from the shipped bytes.

    An artifact error is kept and raised by the first call, so that it reaches the
    driver whole instead of as an actor that failed to start.
    """

    def __init__(self, shipped: _ShippedArtifacts, fn: Any, threads: int, catalog: bool) -> None:
        self.fn = fn
        self.error: MovieRecError | None = None
        try:
            self.arts = shipped.load(threads, catalog=catalog)
        except MovieRecError as exc:
            self.error = exc

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.error is not None:
            raise self.error
        results = []
        for block in unpickled(batch):
            t0 = time.perf_counter()
            result = self.fn(self.arts, block)
            result.busy_seconds = time.perf_counter() - t0
            results.append(result)
        return pickled_table(results)


def _read_part(read: Any, part: Any) -> Iterator[pa.Table]:
    for block in read(part):
        yield pickled_table([block])


def _parts_source(parts: list[Any], read: Any) -> Any:
    """A Ray Data datasource with one read task per part (defined here: it needs Ray)."""
    from functools import partial

    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    fields = {f.name for f in dataclasses.fields(BlockMetadata)}

    class PartsDatasource(Datasource):
        def get_name(self) -> str:
            return "ReadParts"

        def estimate_inmemory_data_size(self) -> int | None:
            paths = {str(p.path) for p in parts if hasattr(p, "path")}
            return sum(os.path.getsize(p) for p in paths) or None

        def get_read_tasks(self, parallelism: int, *args: Any, **kwargs: Any) -> list:
            tasks = []
            for part in parts:
                meta = {"num_rows": None, "size_bytes": None, "exec_stats": None}
                meta["input_files"] = [str(part.path)] if hasattr(part, "path") else None
                if "schema" in fields:  # older Ray releases
                    meta["schema"] = None
                tasks.append(
                    ReadTask(
                        partial(_read_part, read, part),
                        BlockMetadata(**{k: v for k, v in meta.items() if k in fields}),
                    )
                )
            return tasks

    return PartsDatasource()


@dataclass(frozen=True)
class _ShippedArtifacts:
    """Artifact bytes in the Ray object store (``files``: name -> ObjectRef) and the
    SHA-256 values the driver verified; sessions cannot be pickled, bytes can."""

    files: dict[str, Any]
    model_sha256: str
    mapping_sha256: str
    graph_opt: str

    def load(self, threads: int, catalog: bool) -> Artifacts:
        """:func:`load_artifacts` on a private copy: the same checks as everywhere.

        The copy is deleted before returning (a killed actor leaves no files behind), so
        whatever the catalog path opens lazily (``Artifacts.catalog`` where the export
        wrote a catalog graph) is opened here while the files exist.
        """
        import ray

        folder = Path(tempfile.mkdtemp(prefix="movierec-artifacts-"))
        try:
            for name, ref in self.files.items():
                (folder / name).write_bytes(ray.get(ref))
            arts = load_artifacts(
                folder / contract.MODEL_FILE,
                folder / contract.MAPPING_FILE,
                threads=threads,
                graph_opt=self.graph_opt,
            )
            if catalog:
                getattr(arts, "catalog", None)
        finally:  # the sessions hold the graphs in memory: no file is needed any more
            shutil.rmtree(folder, ignore_errors=True)
        if (arts.model_sha256, arts.mapping_sha256) != (self.model_sha256, self.mapping_sha256):
            raise ArtifactError(
                "the model or mapping an actor received differs from the one the driver "
                "verified; rerun the job"
            )
        return arts


def _ship_artifacts(ray: Any, config: ScoreConfig, arts: Artifacts) -> _ShippedArtifacts:
    folder = Path(config.job.artifacts)
    names = {contract.MODEL_FILE, contract.MAPPING_FILE}
    names.update(
        p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(SHIPPED_SUFFIXES)
    )
    files, digests = {}, {}
    for name in sorted(names):
        data = (folder / name).read_bytes()
        digests[name] = _sha256(data)
        files[name] = ray.put(data)
    if (digests[contract.MODEL_FILE], digests[contract.MAPPING_FILE]) != (
        arts.model_sha256,
        arts.mapping_sha256,
    ):
        raise ArtifactError(f"{folder}: the model or ID mapping changed while the job started")
    return _ShippedArtifacts(
        files, arts.model_sha256, arts.mapping_sha256, config.runtime.graph_opt
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- Ray: the cluster, Ray Data settings, errors ------------------------------------------


@contextlib.contextmanager
def _ray_cluster(ray: Any, config: ScoreConfig) -> Iterator[dict[str, Any]]:
    """Join ``address`` (or ``$RAY_ADDRESS``), else start a local instance; the
    instance is shut down afterwards only if this run started it.

    SIGTERM keeps the handler the caller had (``rec-score`` raises ``Interrupted`` and
    exits 128 + 15 after cleaning up), though ``ray.init`` installs its own and a signal
    that lands inside ``ray.get`` comes out of Ray as ``SystemExit(1)``.
    """
    t0 = time.perf_counter()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    started = False
    if ray.is_initialized():
        where = "the Ray instance this process had already joined"
    else:
        address = (config.ray and config.ray.address) or os.environ.get("RAY_ADDRESS") or None
        quiet = config.runtime.quiet
        options: dict[str, Any] = {
            "logging_level": logging.ERROR if quiet else logging.WARNING,
            "log_to_driver": not quiet,
        }
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(address="local", include_dashboard=False, **options)
        except Exception as exc:
            what = f"cannot join the Ray cluster at {address}" if address else "cannot start Ray"
            raise RayJobError(f"{what} ({_first_line(exc)})") from exc
        started = True
        where = address or "local instance"
    terminated: list[int] = []
    if callable(previous):

        def note_sigterm(signum: int, frame: Any) -> None:
            terminated.append(signum)
            previous(signum, frame)

        signal.signal(signal.SIGTERM, note_sigterm)
    try:
        yield {
            "ray_version": ray.__version__,
            "cluster": where,
            "started_here": started,
            "cluster_cpus": float(ray.cluster_resources().get("CPU", 0.0)),
            "ray_start_seconds": round(time.perf_counter() - t0, 3),
        }
    except SystemExit:
        if terminated:
            raise Interrupted(terminated[0]) from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if started:
            ray.shutdown()


@contextlib.contextmanager
def _data_context(ray: Any, quiet: bool, *, preserve_order: bool) -> Iterator[None]:
    """Ray Data settings for one job (the previous values come back afterwards)."""
    ctx = ray.data.DataContext.get_current()
    wanted = {
        "enable_progress_bars": not quiet,
        "print_on_execution_start": not quiet,
        "wait_for_min_actors_s": ACTOR_START_TIMEOUT_S,
        "execution_no_progress_timeout_s": NO_PROGRESS_TIMEOUT_S,
        "raise_original_map_exception": True,
        "max_errored_blocks": 0,
    }
    saved = {k: getattr(ctx, k) for k in wanted if hasattr(ctx, k)}
    saved_order = ctx.execution_options.preserve_order
    # Ray Data's console handlers (its log file keeps everything): nothing with --quiet,
    # else no errors, because the job's error is reported once, in one line
    console = [
        h
        for h in logging.getLogger("ray.data").handlers
        if not isinstance(h, logging.FileHandler) and "File" not in type(h).__name__
    ]
    hide = _HideConsoleRecords(below=logging.NOTSET if quiet else logging.ERROR)
    try:
        for key in saved:
            setattr(ctx, key, wanted[key])
        ctx.execution_options.preserve_order = preserve_order
        for handler in console:
            handler.addFilter(hide)
        yield
    finally:
        for key, value in saved.items():
            setattr(ctx, key, value)
        ctx.execution_options.preserve_order = saved_order
        for handler in console:
            handler.removeFilter(hide)


class _HideConsoleRecords(logging.Filter):
    """Let through only records below a level."""

    def __init__(self, below: int) -> None:
        super().__init__()
        self.below = below

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.below


def _named_or_remote_args(fn: Any, **args: Any) -> dict[str, Any]:
    """Pass task options as named parameters where this Ray release has them."""
    import inspect

    params = inspect.signature(fn).parameters
    if all(k in params for k in args):
        return args
    return {"ray_remote_args": args}


def _reraise_job_error(exc: Exception) -> None:
    """Raise what a failed Ray job means to the user.

    * Bad input found by a worker: the worker's own ``MovieRecError`` (exit 2, one line).
    * A worker or node died, or the job stalled: ``RayJobError`` (exit 2, one line).
    * Anything else is a bug: re-raised as it is (exit 1, traceback).
    """
    from ray import exceptions as rex

    chain = _exception_chain(exc)
    for e in chain:
        if isinstance(e, MovieRecError) and not isinstance(e, rex.RayError):
            e.template = e.template.split("\n", 1)[0]  # Ray Data appends retry advice
            e.args = (e.render(),)
            raise e from None
    system = (
        rex.RayActorError,
        rex.WorkerCrashedError,
        rex.NodeDiedError,
        rex.ObjectLostError,
        rex.RaySystemError,
        rex.GetTimeoutError,
        rex.OutOfMemoryError,
    )
    for e in chain:
        if isinstance(e, system) or type(e).__name__ == "ExecutionTimeoutError":
            raise RayJobError(
                f"the Ray job failed: {type(e).__name__}: {_first_line(e)}{_exit_detail(e)} "
                "(Ray's logs: /tmp/ray/session_latest/logs on each node)"
            ) from exc
    raise exc


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain, todo, seen = [], [exc], set()
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        chain.append(e)
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return [e for e in chain if isinstance(e, BaseException)]


def _exit_detail(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if "Worker exit detail:" in line:
            return "; " + line.split("Worker exit detail:", 1)[1].strip()[:160]
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
