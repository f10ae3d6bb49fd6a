"""The Ray Data engine of ``rec-score`` (``--engine ray``): the local units of work on actors.

Imported only for ``--engine ray``, and Ray itself only inside the functions, so
``serve_batch`` never needs Ray (it is the optional extra ``pip install "movierec[ray]"``).
Ray Data runs everything: a read, ``map_batches`` on a fixed pool of actors, and the
driver consuming the results. There is no scheduler, queue or process pool of our own.

Pairs mode:

* Read: one task per Parquet row-group range (or per CSV file). IDs are converted as in
  the local engine, and errors name the file and the row. Every row carries its 0-based
  row in INPUT; files of a folder are taken in name order.
* Score: each actor builds one onnxruntime session in ``__init__`` with
  :func:`load_artifacts`, from the artifact bytes the driver shipped (the mapping hash is
  verified). It calls :meth:`Artifacts.predict_ids` once per block.
* Finish a block: drop skipped rows and count unknown IDs. Add up the RMSE/MAE sums and
  keep the block's own top-k with :func:`select_top_k`. For a folder OUTPUT, the actor
  does this and writes ``part-<first row>.parquet`` itself. For a single-file OUTPUT the
  driver does it while it writes the file in input order.
* The driver merges the per-block top-k lists with the local :class:`TopKAccumulator`.
  The merge is exact: a pair in a user's top-k over all blocks is also in its own
  block's top-k, so one user's pairs may sit in any blocks. The driver holds users x K
  rows, as the local engine does.

Catalog mode: the driver reads USERS and ``--exclude`` with the local engine's code,
including its checks and unknown-ID policy. It cuts the distinct users into blocks; each
user is in exactly one block, with its already-rated movies as a list column. An actor
calls :func:`score_user_block`, the local loop's unit of work, on sub-blocks of about
``batch_size`` pairs. Only top-k rows leave an actor, so no stage holds users x movies
scores.

Outputs are staged beside their targets, as a hidden temp file or folder. They are
renamed into place only after the whole job has succeeded, so a failed job leaves no
OUTPUT. A folder also gets a ``_SUCCESS`` marker. The manifest is the local engine's,
plus an ``engine`` section.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import pickle
import secrets
import shutil
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.serve_batch import contract
from movierec.serve_batch._artifacts import Artifacts, load_artifacts
from movierec.serve_batch._catalog import (
    apply_unknown_policy,
    read_exclusions,
    read_users,
    score_user_block,
    sorted_unique,
    users_per_block,
)
from movierec.serve_batch._config import DEFAULT_CATALOG_TOP_K, ScoreConfig, check_config
from movierec.serve_batch._ids import convert_id_column
from movierec.serve_batch._io import (
    FORMATS,
    TableReader,
    TableWriter,
    check_distinct_paths,
    check_input_file,
    detect_format,
    insert_before_extension,
    open_table,
)
from movierec.serve_batch._manifest import (
    ErrorMetrics,
    build_manifest,
    manifest_path,
    write_manifest,
)
from movierec.serve_batch._pairs import UnknownTally, _PairsRun, warn_no_rows
from movierec.serve_batch._topk import (
    TOPK_PLAIN_COLUMNS,
    TopKAccumulator,
    select_top_k,
    topk_schema,
)
from movierec.serve_batch.atomic import AtomicOutputs, sweep_stale_temps, temp_path_beside
from movierec.serve_batch.errors import (
    ArtifactError,
    DataError,
    Interrupted,
    MovieRecError,
    UsageError,
)

log = logging.getLogger(__name__)

#: What ``--engine ray`` tells a user whose environment lacks Ray.
RAY_INSTALL_HINT = 'pip install "movierec[ray]" (or: pip install "ray[data]>=2.9")'
#: Written last into every output folder: the folder is complete.
SUCCESS_MARKER = "_SUCCESS"
#: Prefix of the engine's internal columns (an INPUT column may not start with it).
HIDDEN_PREFIX = "__rec_"
ROW_COL = HIDDEN_PREFIX + "row"  # 0-based row in INPUT (files of a folder in name order)
RANK_COL = HIDDEN_PREFIX + "rank_score"
KEPT_COL = HIDDEN_PREFIX + "kept"
UNKNOWN_USER_COL = HIDDEN_PREFIX + "unknown_user"
UNKNOWN_MOVIE_COL = HIDDEN_PREFIX + "unknown_movie"
POS_COL = HIDDEN_PREFIX + "user_pos"  # catalog: position among the distinct users
EXCLUDED_COL = HIDDEN_PREFIX + "excluded"  # catalog: candidate positions never recommended
SUMMARY_COL = HIDDEN_PREFIX + "summary"  # pickled _BlockSummary of a block written by an actor
#: Schema metadata of the rows an actor returns: the seconds its call took, for its rows.
BUSY_KEY, ROWS_KEY = "movierec.busy_seconds", "movierec.busy_rows"
#: Rows one read task takes: whole Parquet row groups, so at least one. A read task's
#: output reaches one actor call (Ray Data bundles it), so pairs mode runs as many actor
#: calls in parallel as it has read tasks: row groups and files set its parallelism.
READ_TASK_ROWS = 1 << 18
#: Pairs one catalog task scores (one actor call); tasks are smaller when that leaves
#: fewer than TASKS_PER_WORKER tasks per actor.
CATALOG_TASK_PAIRS = 1 << 22
TASKS_PER_WORKER = 4
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
            f"--engine ray needs Ray, which is not installed ({exc}); install it with "
            f"{RAY_INSTALL_HINT}"
        ) from exc
    return ray


def score_with_ray(config: ScoreConfig) -> dict[str, Any]:
    """``rec-score --engine ray``: pairs or catalog mode as a Ray Data job.

    The outputs and the manifest are the local engine's (see the module docstring for
    folders). Returns the manifest. Bad input raises the local engine's errors. A job
    that fails for another reason raises :class:`RayJobError`. Either way no output is
    left.
    """
    if config.engine != "ray":
        config = dataclasses.replace(config, engine="ray")
    check_config(config)
    ray = import_ray()
    run = _CatalogJob(config, ray) if config.all_movies else _PairsJob(config, ray)
    return run.execute()


# --- the two jobs -----------------------------------------------------------------------


class _Job:
    """What both modes share: paths, staging, Ray start, the actor pool, the manifest."""

    mode = ""

    def __init__(self, config: ScoreConfig, ray: Any) -> None:
        self.config, self.ray = config, ray
        self.started_at = datetime.now(UTC)
        self.t0 = time.perf_counter()
        self.engine: dict[str, Any] = {}

    def execute(self) -> dict[str, Any]:
        cfg = self.config
        self.plan_paths()
        with _StagedOutputs() as outputs:
            self.reserve(outputs)
            manifest_tmp = outputs.reserve(manifest_path(cfg.output))
            self.arts = load_artifacts(
                cfg.model_path, cfg.mapping_path, threads=1, graph_opt=cfg.graph_opt
            )
            self.prepare()
            with _ray_cluster(self.ray, cfg) as cluster:
                self.engine = {"name": "ray", **cluster}
                try:
                    self.run_pipeline()
                except Exception as exc:
                    _reraise_job_error(exc)
            manifest = self.finish()
            manifest["runtime"]["intra_op_threads"] = cfg.threads_per_worker
            manifest["runtime"]["execution_mode"] = "ray data, actor pool"
            manifest["engine"] = self.engine
            write_manifest(manifest_tmp, manifest)
            outputs.commit()
        self.log_summary(manifest)
        return manifest

    # steps the modes fill in
    def plan_paths(self) -> None: ...
    def reserve(self, outputs: _StagedOutputs) -> None: ...
    def prepare(self) -> None: ...
    def run_pipeline(self) -> None: ...
    def finish(self) -> dict[str, Any]: ...
    def log_summary(self, manifest: dict[str, Any]) -> None: ...

    def map_on_actors(self, ds: Any, actor_cls: type, spec: Any, blocks: int) -> Any:
        """``map_batches`` on a fixed pool of actors, each with T onnxruntime threads
        (``blocks``: the input bundles, at least; no more actors than that)."""
        cfg = self.config
        workers = _plan_workers(cfg, self.engine["cluster_cpus"], blocks)
        shipped = _ship_artifacts(self.ray, cfg, self.arts)
        self.engine.update(
            workers=workers,
            threads_per_worker=cfg.threads_per_worker,
            blocks=blocks,
            artifacts_shipped=sorted(shipped.files),
        )
        with warnings.catch_warnings():
            # actor options are not named parameters of map_batches in every Ray release
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            return ds.map_batches(
                actor_cls,
                fn_constructor_args=(shipped, spec, cfg.threads_per_worker),
                batch_size=None,  # one call per block
                batch_format="pyarrow",
                compute=self.ray.data.ActorPoolStrategy(size=workers),
                num_cpus=cfg.threads_per_worker,
                max_restarts=MAX_ACTOR_RESTARTS,
                max_task_retries=MAX_TASK_RETRIES,
            )

    def results(self, ds: Any) -> Iterator[Any]:
        """Run the job: what the actors return, block by block (tables to write, or the
        summaries of blocks they wrote), adding up the actors' busy seconds."""
        busy = 0.0
        try:
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                if SUMMARY_COL in table.column_names:
                    for summary in _unpack_summaries(table):
                        busy += summary.busy_seconds
                        yield summary
                    continue
                meta = table.schema.metadata or {}
                if BUSY_KEY.encode() in meta:  # pro rata, should Ray split a block
                    rows = int(meta[ROWS_KEY.encode()])
                    share = table.num_rows / rows if rows else 1.0
                    busy += float(meta[BUSY_KEY.encode()]) * share
                yield table.replace_schema_metadata(None)
        finally:
            self.engine["actor_busy_seconds"] = round(busy, 3)

    def base_manifest(self, rows_read: int, rows_written: int, details: dict) -> dict:
        return build_manifest(
            mode=self.mode,
            config=self.config,
            arts=self.arts,
            started_at=self.started_at,
            elapsed=time.perf_counter() - self.t0,
            rows_read=rows_read,
            rows_written=rows_written,
            details=details,
        )


class _PairsJob(_Job):
    mode = "pairs"

    def plan_paths(self) -> None:
        cfg = self.config
        self.files = _input_files(cfg.input, "INPUT")
        self.out = _Target.of(cfg.output, "OUTPUT")
        self.topk = None
        if cfg.top_k is not None:
            default = (
                cfg.output.with_name(cfg.output.name + ".topk")
                if self.out.folder
                else insert_before_extension(cfg.output, "topk")
            )
            self.topk = _Target.of(cfg.top_k_output or default, "top-k output")
        _check_output_paths(
            [cfg.input], [self.out.path, self.topk and self.topk.path, manifest_path(cfg.output)]
        )

    def reserve(self, outputs: _StagedOutputs) -> None:
        self.out_tmp = outputs.reserve_target(self.out)
        self.topk_tmp = outputs.reserve_target(self.topk) if self.topk else None

    def prepare(self) -> None:
        cfg = self.config
        first = self.files[0]
        reader = open_table(
            first.path, first.fmt, columns=(cfg.user_col, cfg.movie_col), batch_size=1024
        )
        # the local engine's checks, output schema and RMSE column, from the first file
        self.probe = _PairsRun(cfg, self.arts, reader)
        hidden = [n for n in reader.schema.names if n.startswith(HIDDEN_PREFIX)]
        if hidden:
            raise DataError(
                f"{first.path}: column {hidden[0]!r} starts with {HIDDEN_PREFIX!r}, which "
                "the Ray engine uses for its own columns; rename it"
            )
        _check_same_schema(self.files, reader.schema, cfg)
        self.parts = _plan_read_parts(self.files, cfg.batch_size)
        rating = None if self.probe.rating_i is None else contract.RATING_COL
        self.spec = _PairsSpec(
            user_col=cfg.user_col,
            movie_col=cfg.movie_col,
            policy="fallback" if cfg.on_unknown == "error" else cfg.on_unknown,
            batch_size=cfg.batch_size,
            top_k=cfg.top_k,
            out_schema=self.probe.out_schema,
            rating_col=rating,
            parts_folder=str(self.out_tmp) if self.out.folder else None,
        )

    def run_pipeline(self) -> None:
        ray, cfg = self.ray, self.config
        self.summaries: list[_BlockSummary] = []
        self.rows_written = 0
        if not self.parts:
            return
        with _data_context(ray, cfg, preserve_order=not self.out.folder):
            source = _pairs_source(ray, self.parts, cfg)
            ds = ray.data.read_datasource(
                source,
                override_num_blocks=len(self.parts),
                # reading is light next to scoring; 0 CPUs lets the reads run beside an
                # actor pool that holds every CPU (else they would wait for ever)
                **_named_or_remote_args(ray.data.read_datasource, num_cpus=0),
            )
            self.engine["read_tasks"] = len(self.parts)
            ds = self.map_on_actors(ds, _PairsScorer, self.spec, blocks=len(self.parts))
            if self.out.folder:
                self.summaries = list(self.results(ds))
                self.rows_written = sum(s.rows_written for s in self.summaries)
                return
            writer = TableWriter(self.out_tmp, self.out.fmt, self.spec.out_schema)
            try:
                for table in self.results(ds):
                    clean, summary = _finish_pairs_block(table, self.spec)
                    writer.write(clean)
                    self.summaries.append(summary)
            finally:
                writer.close()
            self.rows_written = writer.rows

    def finish(self) -> dict[str, Any]:
        cfg, probe = self.config, self.probe
        summaries = sorted(self.summaries, key=lambda s: s.first_row)
        rows_read = sum(s.rows for s in summaries)
        if rows_read == 0:
            warn_no_rows(cfg.input, "INPUT")
        probe.rows_read = rows_read
        probe.unknown = _merge_unknown(summaries)
        if cfg.on_unknown == "error" and probe.unknown.rows_any:
            where = _locate_row(self.files, probe.unknown.first_row)
            raise DataError(f"{cfg.input}: {probe.unknown.describe(rows_read)}{where}")
        probe.metrics = _merge_metrics(s.metrics for s in summaries)
        if self.rows_written == 0:  # no rows: an empty table with every column
            if self.out.folder:
                _write_table(self.out_tmp / _part_name(0), self.spec.out_schema, None)
            else:
                _write_table(self.out_tmp, self.spec.out_schema, None, self.out.fmt)
        details: dict[str, Any] = {
            "input": str(cfg.input),
            "output": str(cfg.output),
            "unknown": probe.unknown.to_dict(cfg.on_unknown),
            "metrics": probe.metrics_dict(),
        }
        if self.topk is not None:
            acc = TopKAccumulator(cfg.top_k, titles=self.probe.topk.titles)
            for s in summaries:
                if s.topk is not None:
                    acc.add(*s.topk)
            table = acc.to_table()
            if self.topk.folder:
                _write_table(self.topk_tmp / _part_name(0), table.schema, table)
            else:
                _write_table(self.topk_tmp, table.schema, table, self.topk.fmt)
            details["top_k"] = {
                "k": cfg.top_k,
                "path": str(self.topk.path),
                "rows": table.num_rows,
                "users": len(np.unique(table.column(0).to_numpy())),
            }
        self.engine.update(input_files=len(self.files), output_layout=self.out.layout)
        return self.base_manifest(rows_read, self.rows_written, details)

    def log_summary(self, manifest: dict[str, Any]) -> None:
        self.probe.log_summary(manifest)


class _CatalogJob(_Job):
    mode = "catalog"

    def plan_paths(self) -> None:
        cfg = self.config
        self.k = cfg.top_k or DEFAULT_CATALOG_TOP_K
        self.files = _input_files(cfg.input, "USERS")
        self.exclude_files = _input_files(cfg.exclude, "--exclude") if cfg.exclude else None
        self.out = _Target.of(cfg.output, "OUTPUT")
        _check_output_paths([cfg.input, cfg.exclude], [self.out.path, manifest_path(cfg.output)])

    def reserve(self, outputs: _StagedOutputs) -> None:
        self.out_tmp = outputs.reserve_target(self.out)

    def prepare(self) -> None:
        cfg, arts = self.config, self.arts
        all_users, self.rows_read = read_users(cfg, [(f.path, f.fmt) for f in self.files])
        self.users, self.user_info = apply_unknown_policy(cfg, arts, all_users)
        self.excluded, self.exclude_info = None, None
        if self.exclude_files is not None:
            keys, rows = [], 0
            for f in self.exclude_files:
                part, info = read_exclusions(
                    dataclasses.replace(cfg, exclude=f.path), f.fmt, arts, self.users
                )
                keys.append(part)
                rows += info["rows_read"]
            self.excluded = sorted_unique(np.concatenate(keys))
            self.exclude_info = {
                "path": str(cfg.exclude),
                "rows_read": rows,
                "pairs_excluded": self.excluded.size,
            }
        self.n_movies = len(arts.movies)
        self.spec = _CatalogSpec(
            k=self.k,
            batch_size=cfg.batch_size,
            n_movies=self.n_movies,
            parts_folder=str(self.out_tmp) if self.out.folder else None,
            titles=cfg.titles,
            per_block=users_per_block(arts, self.k, cfg.batch_size),
        )
        arts.title_lookup(cfg.titles)  # warns once, here, when the mapping has no titles

    def run_pipeline(self) -> None:
        ray, cfg = self.ray, self.config
        self.rows_written = 0
        blocks = _catalog_blocks(
            self.users,
            self.excluded,
            self.n_movies,
            self.spec.per_block,
            cfg,
            self.engine["cluster_cpus"],
        )
        if not blocks:
            return
        with _data_context(ray, cfg, preserve_order=not self.out.folder):
            ds = ray.data.from_arrow(blocks)
            ds = self.map_on_actors(ds, _CatalogScorer, self.spec, blocks=len(blocks))
            if self.out.folder:
                self.rows_written = sum(s.rows_written for s in self.results(ds))
                return
            writer = TableWriter(
                self.out_tmp, self.out.fmt, topk_schema(cfg.titles), TOPK_PLAIN_COLUMNS
            )
            try:
                for table in self.results(ds):
                    writer.write(table)
            finally:
                writer.close()
            self.rows_written = writer.rows

    def finish(self) -> dict[str, Any]:
        cfg = self.config
        if self.rows_written == 0:  # no users: an empty table with every column
            empty = topk_schema(cfg.titles)
            if self.out.folder:
                _write_table(self.out_tmp / _part_name(0), empty, None)
            else:
                _write_table(self.out_tmp, empty, None, self.out.fmt)
        self.engine.update(input_files=len(self.files), output_layout=self.out.layout)
        details = {
            "input": str(cfg.input),
            "output": str(cfg.output),
            "top_k": {"k": self.k, "path": str(cfg.output), "rows": self.rows_written},
            "users": self.user_info,
            "candidates_per_user": self.n_movies,
            "pairs_scored": int(self.users.size) * self.n_movies,
            "exclude": self.exclude_info,
        }
        if hasattr(self.arts, "catalog_path"):  # as local: the catalog graph, if used
            graph = self.arts.catalog
            details["catalog_graph"] = (
                None if graph is None or not graph.usable else str(graph.path)
            )
        return self.base_manifest(self.rows_read, self.rows_written, details)

    def log_summary(self, manifest: dict[str, Any]) -> None:
        log.info(
            "rec-score: top-%d of %d movies for %d users -> %s in %.2f s (Ray: %s workers x %d "
            "threads)",
            self.k,
            self.n_movies,
            self.users.size,
            self.config.output,
            manifest["elapsed_seconds"],
            self.engine.get("workers", 0),
            self.config.threads_per_worker,
        )


# --- what travels to the actors ---------------------------------------------------------


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
    folder = Path(config.artifacts)
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
    return _ShippedArtifacts(files, arts.model_sha256, arts.mapping_sha256, config.graph_opt)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _PairsSpec:
    user_col: str
    movie_col: str
    policy: str  # what predict_ids does with unknown IDs ("error" is decided at the end)
    batch_size: int
    top_k: int | None
    out_schema: pa.Schema
    rating_col: str | None  # the column RMSE/MAE are computed against
    parts_folder: str | None  # a folder OUTPUT: actors write their blocks there


@dataclass(frozen=True)
class _CatalogSpec:
    k: int
    batch_size: int
    n_movies: int
    parts_folder: str | None
    per_block: int  # users per score_user_block call, as the local loop (users_per_block)
    titles: bool = False


@dataclass
class _BlockSummary:
    """What the driver needs of one finished block (pickled when an actor wrote it)."""

    rows: int
    rows_written: int
    first_row: int
    rows_any: int = 0
    rows_user: int = 0
    rows_movie: int = 0
    first_unknown_row: int | None = None
    unknown_users: tuple[np.ndarray, np.ndarray] | None = None  # distinct IDs, first rows
    unknown_movies: tuple[np.ndarray, np.ndarray] | None = None
    metrics: ErrorMetrics | None = None
    topk: tuple[np.ndarray, ...] | None = None  # users, movies, ratings, rank scores, cold
    busy_seconds: float = 0.0  # the actor's call that scored (and wrote) the block


class _Scorer:
    """Base of the actors: one session per actor, built once from the shipped bytes.

    An artifact error is kept and raised by the first call, so that it reaches the
    driver whole instead of as an actor that failed to start.
    """

    catalog = False  # does the actor score catalog blocks

    def __init__(self, shipped: _ShippedArtifacts, spec: Any, threads: int) -> None:
        self.spec = spec
        self.error: MovieRecError | None = None
        try:
            self.arts = shipped.load(threads, catalog=self.catalog)
        except MovieRecError as exc:
            self.error = exc

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Rows for the driver to write, or (folder OUTPUT) the summary of a written block;
        either way with the seconds this call took (the actors' busy time)."""
        if self.error is not None:
            raise self.error
        t0 = time.perf_counter()
        table, summary = self.score(batch)
        busy = time.perf_counter() - t0
        if summary is not None:
            summary.busy_seconds = busy
            return _pack_summary(summary)
        return table.replace_schema_metadata({BUSY_KEY: repr(busy), ROWS_KEY: str(table.num_rows)})

    def score(self, batch: pa.Table) -> tuple[pa.Table | None, _BlockSummary | None]:
        raise NotImplementedError


class _PairsScorer(_Scorer):
    """Scores one block of pairs; with a folder OUTPUT it also finishes and writes it."""

    def score(self, batch: pa.Table) -> tuple[pa.Table | None, _BlockSummary | None]:
        spec = self.spec
        scored = _score_pairs_block(self.arts, batch, spec)
        if spec.parts_folder is None:
            return scored, None
        clean, summary = _finish_pairs_block(scored, spec)
        if clean.num_rows:
            path = Path(spec.parts_folder) / _part_name(summary.first_row)
            _write_table(path, spec.out_schema, clean)
        return None, summary


class _CatalogScorer(_Scorer):
    """Top-k of one block of distinct users against the whole catalog."""

    catalog = True

    def score(self, batch: pa.Table) -> tuple[pa.Table | None, _BlockSummary | None]:
        spec = self.spec
        users = batch.column(contract.USER_COL).to_numpy()
        n_movies = len(self.arts.movies)
        if n_movies != spec.n_movies:
            raise ArtifactError(f"actor sees {n_movies} movies, the driver {spec.n_movies}")
        offsets = values = None
        if EXCLUDED_COL in batch.column_names:
            lists = batch.column(EXCLUDED_COL).combine_chunks()
            offsets = lists.offsets.to_numpy()
            values = lists.values.to_numpy()
        per_block = spec.per_block  # as the local loop
        titles = self.arts.titles if spec.titles else None  # the driver warned if empty
        tables = []
        for a in range(0, users.size, per_block):
            b = min(a + per_block, users.size)
            local = None
            if offsets is not None:
                counts = np.diff(offsets[a : b + 1])
                rows = np.repeat(np.arange(b - a, dtype=np.int64), counts)
                local = rows * n_movies + values[offsets[a] : offsets[b]]
            tables.append(
                score_user_block(self.arts, users[a:b], local, spec.k, spec.batch_size, titles)
            )
        schema = topk_schema(spec.titles)
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        if spec.parts_folder is None:
            return table, None
        first = int(batch.column(POS_COL)[0].as_py())
        if table.num_rows:
            _write_table(Path(spec.parts_folder) / _part_name(first), schema, table)
        return None, _BlockSummary(rows=users.size, rows_written=table.num_rows, first_row=first)


# --- pairs: reading, scoring, finishing -------------------------------------------------


@dataclass(frozen=True)
class _InputFile:
    path: Path
    fmt: str
    rows: int | None  # None: a CSV file (unknown until read)


@dataclass(frozen=True)
class _ReadPart:
    """One read task: a file, or some of its row groups, and where its rows start."""

    path: str
    fmt: str
    row_groups: tuple[int, ...] | None  # None: the whole file
    file_row: int  # 0-based row in the file of the part's first row (for error messages)
    input_row: int  # 0-based row in INPUT of the part's first row
    rows: int | None


def _plan_read_parts(files: list[_InputFile], batch_size: int) -> list[_ReadPart]:
    """Parquet: runs of whole row groups of about READ_TASK_ROWS rows; CSV: the file."""
    parts: list[_ReadPart] = []
    input_row = 0
    for f in files:
        if f.fmt != "parquet":
            parts.append(_ReadPart(str(f.path), f.fmt, None, 0, input_row, None))
            continue
        meta = pq.ParquetFile(f.path).metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        groups: list[int] = []
        start = rows = 0  # first row in the file and rows of the part being formed
        for g, n in enumerate(sizes):
            if n:
                groups.append(g)
                rows += n
            last = g == len(sizes) - 1
            if groups and (rows >= max(READ_TASK_ROWS, batch_size) or last):
                part = _ReadPart(str(f.path), "parquet", tuple(groups), start, 0, rows)
                parts.append(dataclasses.replace(part, input_row=input_row + start))
                start, groups, rows = start + rows, [], 0
        input_row += meta.num_rows
    return parts


def _read_part(part: _ReadPart, user_col: str, movie_col: str, batch_size: int):
    """Blocks of ``batch_size`` rows: IDs as int64 (checked as the local engine checks
    them, errors naming the file and row) plus the row's position in INPUT."""
    path = Path(part.path)
    if part.fmt == "parquet":
        pf = pq.ParquetFile(path)
        batches = pf.iter_batches(batch_size=batch_size, row_groups=list(part.row_groups))
        reader = TableReader(path, pf.schema_arrow, part.rows, batches)
    else:
        reader = open_table(path, part.fmt, columns=(user_col, movie_col), batch_size=batch_size)
    done = 0
    for batch in reader.iter_batches():
        n = batch.num_rows
        if n == 0:
            continue
        table = pa.Table.from_batches([batch]).replace_schema_metadata(None)
        for name, kind in ((user_col, "user"), (movie_col, "movie")):
            ids = convert_id_column(
                table.column(name),
                source=part.path,
                name=name,
                kind=kind,
                row_offset=part.file_row + done,
            )
            i = table.schema.get_field_index(name)
            table = table.set_column(i, pa.field(name, pa.int64()), pa.array(ids))
        first = part.input_row + done
        rows = pa.array(np.arange(first, first + n, dtype=np.int64))
        yield table.append_column(ROW_COL, rows)
        done += n


def _pairs_source(ray: Any, parts: list[_ReadPart], config: ScoreConfig) -> Any:
    """A Ray Data datasource with one read task per part (defined here: it needs Ray)."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    fields = {f.name for f in dataclasses.fields(BlockMetadata)}

    class PairsDatasource(Datasource):
        def get_name(self) -> str:
            return "ReadPairs"

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(os.path.getsize(p.path) for p in {p.path: p for p in parts}.values())

        def get_read_tasks(self, parallelism: int, *args: Any, **kwargs: Any) -> list:
            tasks = []
            for part in parts:
                meta = {"num_rows": part.rows, "size_bytes": None, "exec_stats": None}
                meta["input_files"] = [part.path]
                if "schema" in fields:  # older Ray releases
                    meta["schema"] = None
                read = functools.partial(
                    _read_part, part, config.user_col, config.movie_col, config.batch_size
                )
                tasks.append(
                    ReadTask(read, BlockMetadata(**{k: v for k, v in meta.items() if k in fields}))
                )
            return tasks

    return PairsDatasource()


def _score_pairs_block(arts: Artifacts, batch: pa.Table, spec: _PairsSpec) -> pa.Table:
    """``predict_ids`` on one block: every row stays, with the masks the finish needs."""
    users = batch.column(spec.user_col).to_numpy()
    movies = batch.column(spec.movie_col).to_numpy()
    pred = arts.predict_ids(users, movies, on_unknown=spec.policy, batch_size=spec.batch_size)
    ratings, ranks, cold = pred.ratings, pred.rank_scores, pred.cold_start
    if not pred.kept.all():  # --unknown skip: the skipped rows get no score
        ratings = _scatter(pred.kept, ratings, np.nan)
        ranks = _scatter(pred.kept, ranks, np.nan)
        cold = _scatter(pred.kept, cold, False)
    for name, values in (
        (contract.PREDICTION_COL, ratings),
        (contract.COLD_START_COL, cold),
        (RANK_COL, ranks),
        (KEPT_COL, pred.kept),
        (UNKNOWN_USER_COL, pred.unknown_user),
        (UNKNOWN_MOVIE_COL, pred.unknown_movie),
    ):
        batch = batch.append_column(name, pa.array(values))
    return batch


def _scatter(mask: np.ndarray, values: np.ndarray, fill: Any) -> np.ndarray:
    out = np.full(mask.size, fill, dtype=values.dtype)
    out[mask] = values
    return out


def _finish_pairs_block(table: pa.Table, spec: _PairsSpec) -> tuple[pa.Table, _BlockSummary]:
    """The output rows of a scored block (input order) and its summary for the driver."""
    rows = table.column(ROW_COL).to_numpy()
    if rows.size > 1 and (np.diff(rows) < 0).any():
        order = np.argsort(rows, kind="stable")
        table, rows = table.take(pa.array(order)), rows[order]
    kept = _bools(table, KEPT_COL)
    unknown_user = _bools(table, UNKNOWN_USER_COL)
    unknown_movie = _bools(table, UNKNOWN_MOVIE_COL)
    users = table.column(spec.user_col).to_numpy()
    movies = table.column(spec.movie_col).to_numpy()
    any_unknown = unknown_user | unknown_movie
    summary = _BlockSummary(
        rows=int(rows.size),
        rows_written=int(kept.sum()),
        first_row=int(rows[0]) if rows.size else 0,
        rows_any=int(any_unknown.sum()),
        rows_user=int(unknown_user.sum()),
        rows_movie=int(unknown_movie.sum()),
    )
    if summary.rows_any:
        summary.first_unknown_row = int(rows[np.argmax(any_unknown)])
        summary.unknown_users = _first_rows(users[unknown_user], rows[unknown_user])
        summary.unknown_movies = _first_rows(movies[unknown_movie], rows[unknown_movie])
    clean = table if kept.all() else table.filter(pa.array(kept))
    if spec.rating_col is not None:
        truth = clean.column(spec.rating_col).cast(pa.float64()).to_numpy()
        summary.metrics = ErrorMetrics()
        summary.metrics.add(truth, clean.column(contract.PREDICTION_COL).to_numpy())
    if spec.top_k is not None and clean.num_rows:
        arrays = [
            clean.column(name).to_numpy()
            for name in (
                spec.user_col,
                spec.movie_col,
                contract.PREDICTION_COL,
                RANK_COL,
                contract.COLD_START_COL,
            )
        ]
        idx, _ = select_top_k(arrays[0], arrays[1], arrays[3], spec.top_k, arrays[4])
        summary.topk = tuple(a[idx] for a in arrays)
    clean = clean.select(spec.out_schema.names).cast(spec.out_schema)
    return clean, summary


def _bools(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy().astype(bool, copy=False)


def _first_rows(ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct IDs and the INPUT row each first appears in."""
    uniq, first = np.unique(ids, return_index=True)
    return uniq, rows[first]


def _merge_unknown(summaries: list[_BlockSummary]) -> UnknownTally:
    """The local engine's tally, from the block summaries (in INPUT row order)."""
    tally = UnknownTally()
    tally.rows_any = sum(s.rows_any for s in summaries)
    tally.rows_user = sum(s.rows_user for s in summaries)
    tally.rows_movie = sum(s.rows_movie for s in summaries)
    firsts = [s.first_unknown_row for s in summaries if s.first_unknown_row is not None]
    tally.first_row = min(firsts) if firsts else None
    for target, attr in ((tally.users, "unknown_users"), (tally.movies, "unknown_movies")):
        found = [getattr(s, attr) for s in summaries if getattr(s, attr) is not None]
        if found:
            ids = np.concatenate([f[0] for f in found])
            rows = np.concatenate([f[1] for f in found])
            target.add(ids[np.argsort(rows, kind="stable")])  # order of first appearance
    return tally


def _merge_metrics(parts: Any) -> ErrorMetrics:
    total = ErrorMetrics()
    for m in parts:
        if m is not None:  # ErrorMetrics keeps running sums: adding them is exact
            total.count += m.count
            total._sq += m._sq
            total._abs += m._abs
    return total


def _locate_row(files: list[_InputFile], row: int | None) -> str:
    """For a folder INPUT: which file holds INPUT row ``row``."""
    if row is None or len(files) == 1:
        return ""
    start = 0
    for f in files:
        if f.rows is not None and row < start + f.rows:
            return f" (that is {f.path} row {row - start})"
        start += f.rows or 0
    return ""


def _pack_summary(summary: _BlockSummary) -> pa.Table:
    return pa.table({SUMMARY_COL: pa.array([pickle.dumps(summary)], pa.binary())})


def _unpack_summaries(table: pa.Table) -> list[_BlockSummary]:
    return [pickle.loads(b) for b in table.column(SUMMARY_COL).to_pylist()]


# --- catalog: users and their blocks ------------------------------------------------------


def _catalog_blocks(
    users: np.ndarray,
    excluded: np.ndarray | None,
    n_movies: int,
    per_block: int,
    config: ScoreConfig,
    cluster_cpus: float,
) -> list[pa.Table]:
    """Blocks of distinct users (ascending), each user once, with its excluded movies.

    About CATALOG_TASK_PAIRS pairs a block, fewer when that leaves the actors fewer than
    TASKS_PER_WORKER blocks each; always whole sub-blocks of the local loop.
    """
    n = int(users.size)
    if n == 0:
        return []
    workers = config.workers or max(1, int(cluster_cpus // config.threads_per_worker))
    per_task = min(max(1, CATALOG_TASK_PAIRS // n_movies), -(-n // (TASKS_PER_WORKER * workers)))
    # whole local sub-blocks: the onnxruntime calls see the very batches the local loop makes
    per_task = per_block * max(1, -(-per_task // per_block))
    offsets = None
    if excluded is not None:
        counts = np.bincount(excluded // n_movies, minlength=n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        positions = (excluded % n_movies).astype(np.int32)
    blocks = []
    for a in range(0, n, per_task):
        b = min(a + per_task, n)
        cols = {
            contract.USER_COL: pa.array(users[a:b], pa.int64()),
            POS_COL: pa.array(np.arange(a, b, dtype=np.int64)),
        }
        if offsets is not None:  # own buffers per block: nothing shared is shipped twice
            lo, hi = offsets[a], offsets[b]
            cols[EXCLUDED_COL] = pa.LargeListArray.from_arrays(
                pa.array(offsets[a : b + 1] - lo), pa.array(positions[lo:hi].copy())
            )
        blocks.append(pa.table(cols))
    return blocks


# --- paths and staged outputs -------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """An output path: a single file (by its ending, as the local engine) or a folder."""

    path: Path
    fmt: str  # "parquet", "csv", "csv.gz"; a folder holds Parquet part files
    folder: bool

    @property
    def layout(self) -> str:
        return "folder" if self.folder else "file"

    @staticmethod
    def of(path: Path, role: str) -> _Target:
        path = Path(path)
        name = path.name.lower()
        if any(name.endswith(e) and len(name) > len(e) for e in FORMATS):
            return _Target(path, detect_format(path, role), False)
        return _Target(path, "parquet", True)


def _input_files(path: Path, role: str) -> list[_InputFile]:
    """A file as the local engine reads it, or a folder's ``*.parquet`` files (below it
    too, hidden and ``_``-prefixed names skipped) in name order."""
    path = Path(path)
    if not path.is_dir():
        fmt = detect_format(path, role)
        check_input_file(path, role)
        return [_InputFile(path, fmt, _parquet_rows(path) if fmt == "parquet" else None)]
    found = sorted(
        p
        for p in path.rglob("*.parquet")
        if p.is_file() and not any(s.startswith((".", "_")) for s in p.relative_to(path).parts)
    )
    if not found:
        raise DataError(f"{path}: {role} folder holds no .parquet files")
    return [_InputFile(p, "parquet", _parquet_rows(p)) for p in found]


def _parquet_rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc


def _check_same_schema(files: list[_InputFile], schema: pa.Schema, config: ScoreConfig) -> None:
    """Every Parquet file of a folder INPUT has the first file's columns and types (the
    ID columns may differ in type: they become int64)."""
    ids = {config.user_col, config.movie_col}
    want = [(f.name, None if f.name in ids else f.type) for f in schema]
    for f in files[1:]:
        got_schema = pq.ParquetFile(f.path).schema_arrow
        got = [(x.name, None if x.name in ids else x.type) for x in got_schema]
        if got != want:
            diff = next(
                (f"{a} vs {b}" for a, b in zip(want, got, strict=False) if a != b),
                f"{len(want)} vs {len(got)} columns",
            )
            raise DataError(
                f"{f.path}: its columns differ from {files[0].path} ({diff}); every Parquet "
                "file of INPUT needs the same columns and types"
            )


def _check_output_paths(inputs: list[Path | None], outputs: list[Path | None]) -> None:
    """The local checks, plus: no output inside an input folder or the reverse."""
    check_distinct_paths(inputs, outputs)
    for i in inputs:
        for o in outputs:
            if i is None or o is None:
                continue
            a, b = Path(i).resolve(), Path(o).resolve()
            if a in b.parents or b in a.parents:
                raise UsageError(f"{o}: an output cannot be inside an input folder, or hold one")


def _part_name(first_row: int) -> str:
    """Part files sort by name in INPUT order (catalog: in user order)."""
    return f"part-{first_row:012d}.parquet"


def _write_table(
    path: Path, schema: pa.Schema, table: pa.Table | None, fmt: str = "parquet"
) -> None:
    writer = TableWriter(path, fmt, schema)
    try:
        if table is not None:
            writer.write(table)
    finally:
        writer.close()


class _StagedOutputs(AtomicOutputs):
    """:class:`AtomicOutputs` plus folder outputs: a hidden temp folder beside the target,
    completed with a ``_SUCCESS`` marker and renamed into place with the files.

    A previous rec-score output folder (one with ``_SUCCESS``) is replaced; any other
    existing folder is refused before the job starts.
    """

    def __init__(self) -> None:
        super().__init__()
        self._folders: list[tuple[Path, Path]] = []

    def reserve_target(self, target: _Target) -> Path:
        return self.reserve_folder(target.path) if target.folder else self.reserve(target.path)

    def reserve_folder(self, target: Path) -> Path:
        target = Path(target)
        parent = target.parent
        if not parent.is_dir():
            raise UsageError(f"{target}: output folder {parent} does not exist")
        if target.exists() and not target.is_dir():
            raise UsageError(
                f"{target}: is a file; an OUTPUT without a .parquet, .csv or .csv.gz ending "
                "is written as a folder"
            )
        if target.is_dir() and any(target.iterdir()) and not (target / SUCCESS_MARKER).exists():
            raise UsageError(
                f"{target}: folder exists and is not a rec-score output (no {SUCCESS_MARKER}); "
                "remove it or choose another OUTPUT"
            )
        sweep_stale_temps(target)
        try:
            tmp = temp_path_beside(target, folder=True)
        except OSError as exc:
            raise UsageError(
                f"{target}: cannot write to folder {parent} ({exc.strerror or exc})"
            ) from exc
        self._folders.append((tmp, target))
        return tmp

    def commit(self) -> None:
        for tmp, _ in self._folders:
            (tmp / SUCCESS_MARKER).touch()
        held = {signal.SIGTERM, signal.SIGINT}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        replaced = []
        try:
            for tmp, target in self._folders:
                if target.exists():  # an earlier output: moved aside, deleted below
                    aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
                    os.replace(target, aside)
                    replaced.append(aside)
                os.replace(tmp, target)
            self._folders.clear()
            super().commit()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        for aside in replaced:
            shutil.rmtree(aside, ignore_errors=True)

    def discard(self) -> None:
        for tmp, _ in self._folders:
            shutil.rmtree(tmp, ignore_errors=True)
        self._folders.clear()
        super().discard()


# --- Ray: the cluster, Ray Data settings, errors ------------------------------------------


@contextlib.contextmanager
def _ray_cluster(ray: Any, config: ScoreConfig) -> Iterator[dict[str, Any]]:
    """Join ``--ray-address`` (or ``$RAY_ADDRESS``), else start a local instance; the
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
        address = config.ray_address or os.environ.get("RAY_ADDRESS") or None
        options: dict[str, Any] = {
            "logging_level": logging.ERROR if config.quiet else logging.WARNING,
            "log_to_driver": not config.quiet,
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
def _data_context(ray: Any, config: ScoreConfig, *, preserve_order: bool) -> Iterator[None]:
    """Ray Data settings for one job (the previous values come back afterwards)."""
    ctx = ray.data.DataContext.get_current()
    wanted = {
        "enable_progress_bars": not config.quiet,
        "print_on_execution_start": not config.quiet,
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
    hide = _HideConsoleRecords(below=logging.NOTSET if config.quiet else logging.ERROR)
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


def _plan_workers(config: ScoreConfig, cpus: float, blocks: int) -> int:
    """Actors: N x T never exceeds the cluster's CPUs, and never more actors than blocks."""
    t = config.threads_per_worker
    if cpus < t:
        raise UsageError(
            f"--threads-per-worker {t} needs {t} CPUs per actor, but the Ray cluster has {cpus:g}"
        )
    most = int(cpus // t)
    if config.workers is not None and config.workers > most:
        raise UsageError(
            f"--workers {config.workers} x --threads-per-worker {t} = {config.workers * t} "
            f"CPUs, but the Ray cluster has {cpus:g}; lower --workers or --threads-per-worker"
        )
    return max(1, min(config.workers or most, blocks))


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
            if e.args and isinstance(e.args[0], str):  # Ray Data appends retry advice
                e.args = (e.args[0].split("\n", 1)[0], *e.args[1:])
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
