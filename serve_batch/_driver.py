"""The one scoring driver of ``rec-score`` and the Python API, for both engines.

It reads the input, hands blocks to an executor (``movierec.serve_batch._executors``)
that runs the mode's per-block function, merges the results in input order, writes the
outputs and builds the manifest. Outputs are staged beside their targets
(:class:`AtomicOutputs`) and renamed into place only when the whole run succeeded.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from movierec.serve_batch import contract
from movierec.serve_batch._artifacts import Artifacts, load_artifacts
from movierec.serve_batch._catalog import users_per_block
from movierec.serve_batch._catalog_job import (
    CatalogBlockFn,
    CatalogSpec,
    apply_unknown_policy,
    catalog_tasks,
    read_exclusions,
    read_users,
)
from movierec.serve_batch._config import ScoreConfig, ScoreJob
from movierec.serve_batch._executors import Executor, open_executor
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch._idvalues import Ids, column_ids, distinct
from movierec.serve_batch._io import (
    FORMATS,
    ROW_GROUP_ROWS,
    BackgroundWriter,
    Input,
    TableWriter,
    check_distinct_paths,
    detect_format,
    input_files,
    insert_before_extension,
    open_input,
    read_blocks,
)
from movierec.serve_batch._manifest import build_manifest, manifest_path, write_manifest
from movierec.serve_batch._pairs import (
    PairsBlockFn,
    PairsSpec,
    PairsTotals,
    log_pairs_summary,
    pairs_spec,
)
from movierec.serve_batch._topk import topk_schema
from movierec.serve_batch.atomic import AtomicOutputs
from movierec.serve_batch.errors import DataError, UsageError

log = logging.getLogger(__name__)

#: Catalog tasks of the Ray engine: about this many pairs each (one actor call), fewer
#: when that leaves fewer than TASKS_PER_WORKER tasks per actor.
CATALOG_TASK_PAIRS = 1 << 22
TASKS_PER_WORKER = 4


def score(config: ScoreConfig) -> dict[str, Any]:
    """Run ``rec-score``: pairs mode, or catalog mode with ``config.job.all_movies``, on
    the engine the configuration names. Returns the manifest."""
    return score_catalog(config) if config.job.all_movies else score_file(config)


def score_file(config: ScoreConfig) -> dict[str, Any]:
    """Pairs mode: write OUTPUT (+ top-k table) and return the manifest.

    Streams blocks: memory does not grow with the input (the top-k state grows with
    users x K). Every block goes through :meth:`Artifacts.predict_ids`, the call the
    exporter's parity check makes too. Nothing is renamed into place unless the whole
    run succeeds.
    """
    if config.job.all_movies:
        raise UsageError("{all_movies} is catalog mode: call score_catalog", params=("all_movies",))
    return _Run(config).execute(_PairsMode())


def score_catalog(config: ScoreConfig) -> dict[str, Any]:
    """Catalog mode: write each user's top-k movies; return the manifest.

    Movies the user already rated in ``exclude`` are never recommended. Users listed
    twice are scored once. Unknown users follow ``on_unknown`` (fallback: movies ranked
    by their fallback mean, ``cold_start=True``).
    """
    if not config.job.all_movies:
        config = dataclasses.replace(config, job=dataclasses.replace(config.job, all_movies=True))
    return _Run(config).execute(_CatalogMode())


# --- outputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """An output: one file (its format by its ending) or a folder of Parquet parts."""

    path: Path
    fmt: str
    folder: bool

    @staticmethod
    def of(path: Path, role: str) -> Target:
        """A name ending in .parquet, .csv or .csv.gz is a file; one without an ending
        (no dot) a folder; any other ending is refused."""
        path = Path(path)
        name = path.name.lower()
        if any(name.endswith(e) and len(name) > len(e) for e in FORMATS) or "." in name.strip("."):
            return Target(path, detect_format(path, role), False)
        return Target(path, "parquet", True)

    def topk_default(self) -> Target:
        """Where the top-k table of pairs mode goes unless told: ``out.topk.parquet``, or
        the folder ``out.topk`` beside a folder output."""
        if self.folder:
            return Target(self.path.with_name(self.path.name + ".topk"), "parquet", True)
        return Target(insert_before_extension(self.path, "topk"), self.fmt, False)


def part_name(first: int) -> str:
    """Part files sort by name in input order (catalog: in user order)."""
    return f"part-{first:012d}.parquet"


def write_table(path: Path, fmt: str, schema: pa.Schema, tables: Iterable[pa.Table]) -> int:
    """Write ``tables`` (maybe none) as one file of ``schema``; return the rows."""
    writer = TableWriter(path, fmt, schema, plain_columns=_plain(schema))
    try:
        for table in tables:
            writer.write(table)
    finally:
        writer.close()
    return writer.rows


class WriteParts:
    """A per-block function whose results are also written as ``folder/part-N.parquet``
    where it runs (a folder output: each worker writes its own blocks)."""

    def __init__(self, fn: Any, folder: Path, schema: pa.Schema) -> None:
        self.fn, self.folder, self.schema = fn, Path(folder), schema

    def __call__(self, arts: Artifacts, block: Any) -> Any:
        result = self.fn(arts, block)
        if result.table is not None and result.table.num_rows:
            write_table(
                self.folder / part_name(result.first), "parquet", self.schema, [result.table]
            )
        result.table = None
        return result


class Sink:
    """Where the driver writes results: a file (through a writer thread when I/O
    overlaps scoring), a folder whose parts the blocks wrote themselves, or memory."""

    def __init__(
        self, writer: TableWriter | None = None, background: bool = False, batch_size: int = 1
    ) -> None:
        self.rows = 0
        self._file = writer
        self._thread: BackgroundWriter | None = None
        if writer is not None and background:
            # room for a whole row group while the writer encodes the previous one, so
            # that scoring never waits on it (bench/score.py)
            depth = max(2, ROW_GROUP_ROWS // max(1, batch_size) + 1)
            self._thread = BackgroundWriter(writer, depth=depth)
        self.tables: list[pa.RecordBatch | pa.Table] | None = [] if writer is None else None

    @classmethod
    def memory(cls) -> Sink:
        return cls()

    def write(self, table: pa.RecordBatch | pa.Table) -> None:
        self.rows += table.num_rows
        if self.tables is not None:
            self.tables.append(table)
        else:
            (self._thread or self._file).write(table)

    def close(self, ok: bool) -> None:
        """Finish the file (``ok``: every row was given; else stop without the rest)."""
        if self._file is None:
            return
        try:
            if self._thread is not None:
                if ok:
                    self._thread.close()
                else:
                    self._thread.abort()
        finally:
            self._file.close()


# --- the two modes ------------------------------------------------------------------------


def stream_pairs(
    executor: Executor,
    inp: Input,
    spec: PairsSpec,
    totals: PairsTotals,
    sink: Sink | None,
    *,
    batch_size: int,
    parts_folder: Path | None = None,
    quiet: bool = True,
    on_result: Any = None,
) -> None:
    """Score every block of ``inp``; results are merged into ``totals`` in input order
    and their rows written to ``sink`` (or, with ``parts_folder``, by the blocks)."""
    fn = PairsBlockFn(spec)
    block_fn: Any = fn if parts_folder is None else WriteParts(fn, parts_folder, spec.out_schema)
    read = partial(read_blocks, ids=spec.ids, sides=("user", "movie"), batch_size=batch_size)
    results: Iterator[Any] = executor.map(block_fn, inp.parts, read, ordered=parts_folder is None)
    if parts_folder is not None:  # the blocks came in any order: merge them in input order
        results = iter(sorted(results, key=lambda r: r.first_row))
    with _progress(inp.num_rows, "rows", "scoring", quiet) as bar:
        for result in results:
            totals.add(result)
            if totals.failed:
                fn.count_only = True  # the run fails: count the rest, score nothing more
            elif result.table is not None and sink is not None:
                sink.write(result.table)
                if on_result is not None:
                    on_result(result)
            bar.update(result.rows)
    if totals.failed:
        where = inp.locate(totals.unknown.first_row)
        raise DataError(
            f"{inp.label}: {totals.unknown.describe(totals.rows_read)}{where}",
            params=("on_unknown",),
        )


def catalog_spec(job: ScoreJob, arts: Artifacts, batch_size: int) -> CatalogSpec:
    """Blocks of users sized by the pairs they send through the model, the same for
    every engine (so their onnxruntime calls see the same batches)."""
    return CatalogSpec(
        k=job.k,
        batch_size=batch_size,
        n_movies=len(arts.movies),
        per_block=users_per_block(arts, job.k, batch_size),
        titles=job.titles,
        ids=job.id_schema(arts.id_schema),
    )


def stream_catalog(
    executor: Executor,
    spec: CatalogSpec,
    users: Ids,
    excluded: np.ndarray | None,
    sink: Sink | None,
    *,
    per_task: int,
    parts_folder: Path | None = None,
    quiet: bool = True,
) -> int:
    """Score every user's top-k a task at a time; return the rows written."""
    fn: Any = CatalogBlockFn(spec)
    if parts_folder is not None:
        fn = WriteParts(fn, parts_folder, topk_schema(spec.ids, spec.titles))
    tasks = catalog_tasks(users, excluded, spec.n_movies, per_task)
    rows = 0
    with _progress(len(users), "users", "catalog", quiet) as bar:
        for result in executor.map(fn, tasks, ordered=parts_folder is None):
            rows += result.rows_written
            if result.table is not None and sink is not None:
                sink.write(result.table)
            bar.update(result.users)
    return rows


def _progress(total: int | None, unit: str, desc: str, quiet: bool) -> tqdm:
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=unit == "rows",
        desc=desc,
        disable=True if quiet else None,
        leave=False,
    )


class _Run:
    """One file-to-file run: paths, staging, artifacts, executor, manifest."""

    def __init__(self, config: ScoreConfig) -> None:
        self.config = config
        self.job, self.runtime = config.job, config.runtime
        self.started_at = datetime.now(UTC)
        self.t0 = time.perf_counter()

    def execute(self, mode: _Mode) -> dict[str, Any]:
        job, rt = self.job, self.runtime
        self.out = Target.of(job.output, "{output}")
        mode.plan(self)
        inputs = [job.input, job.exclude]
        outputs = [t.path for t in mode.targets] + [manifest_path(job.output)]
        check_distinct_paths(inputs, outputs)
        with AtomicOutputs() as staged:
            self.tmp = {
                t.path: staged.reserve_folder(t.path) if t.folder else staged.reserve(t.path)
                for t in mode.targets
            }
            manifest_tmp = staged.reserve(manifest_path(job.output))
            on_ray = self.config.ray is not None
            self.arts = load_artifacts(
                job.model_path,
                job.mapping_path,
                threads=1 if on_ray else rt.threads,
                graph_opt=rt.graph_opt,
                parallelism=rt.parallelism,
            )
            # the ID columns left out are the model's (its training data's names)
            self.job = job = job.with_model_columns(self.arts.id_schema)
            self.config = dataclasses.replace(self.config, job=job)
            self.ids: IdSchema = job.id_schema(self.arts.id_schema)
            details = mode.prepare(self)
            with open_executor(self.config, self.arts) as executor:
                details = {**details, **mode.run(self, executor)}
                engine = executor.describe()
            manifest = build_manifest(
                mode=mode.name,
                config=self.config,
                arts=self.arts,
                started_at=self.started_at,
                elapsed=time.perf_counter() - self.t0,
                rows_read=mode.rows_read,
                rows_written=mode.rows_written,
                details={
                    "input": str(job.input),
                    "output": str(job.output),
                    "input_files": len(mode.files),
                    "output_layout": "folder" if self.out.folder else "file",
                    **details,
                },
                engine=engine,
            )
            write_manifest(manifest_tmp, manifest)
            staged.commit()
        mode.log_summary(self, manifest)
        return manifest

    def output(self, target: Target, schema: pa.Schema) -> tuple[Sink | None, Path | None]:
        """A file target's sink, or a folder target's staging folder (parts are written
        by the blocks)."""
        tmp = self.tmp[target.path]
        if target.folder:
            return None, tmp
        writer = TableWriter(tmp, target.fmt, schema, plain_columns=_plain(schema))
        return Sink(writer, self.runtime.overlap_io, self.runtime.batch_size), None

    def finish_output(self, target: Target, schema: pa.Schema, sink: Sink | None, ok: bool) -> None:
        if sink is not None:
            sink.close(ok)
        elif ok and not any(self.tmp[target.path].iterdir()):  # an empty folder output
            write_table(self.tmp[target.path] / part_name(0), "parquet", schema, [])

    def write_whole(self, target: Target, table: pa.Table) -> None:
        tmp = self.tmp[target.path]
        path, fmt = (tmp / part_name(0), "parquet") if target.folder else (tmp, target.fmt)
        write_table(path, fmt, table.schema, [table])


def _plain(schema: pa.Schema) -> list[str]:
    """Columns written without a dictionary: the ratings and scores (high-cardinality
    floats, where a dictionary costs time and saves nothing)."""
    return [n for n in (contract.PREDICTION_COL, contract.SCORE_COL) if n in schema.names]


class _Mode:
    name = ""
    files: list[Any]
    rows_read = 0
    rows_written = 0
    targets: list[Target]

    def plan(self, run: _Run) -> None: ...
    def prepare(self, run: _Run) -> dict[str, Any]: ...
    def run(self, run: _Run, executor: Executor) -> dict[str, Any]: ...
    def log_summary(self, run: _Run, manifest: dict[str, Any]) -> None: ...


class _PairsMode(_Mode):
    name = "pairs"

    def plan(self, run: _Run) -> None:
        job = run.job
        self.files = input_files(job.input, "{input}")
        self.topk = None
        if job.top_k is not None:
            given = job.top_k_output
            self.topk = (
                run.out.topk_default() if given is None else Target.of(given, "{top_k_output}")
            )
        self.targets = [run.out] + ([self.topk] if self.topk else [])

    def prepare(self, run: _Run) -> dict[str, Any]:
        job = run.job
        ray = run.config.ray
        part_rows = ray.rows_per_task if ray is not None else None
        self.inp = open_input(
            job.input, "{input}", (job.user_col, job.movie_col), part_rows=part_rows
        )
        self.spec = pairs_spec(
            job, self.inp.schema, self.inp.label, run.runtime.batch_size, run.ids
        )
        return {}

    def run(self, run: _Run, executor: Executor) -> dict[str, Any]:
        job, rt = run.job, run.runtime
        totals = PairsTotals(job.top_k, run.arts.title_lookup(job.titles), run.arts, run.ids)
        sink, folder = run.output(run.out, self.spec.out_schema)
        ok = False
        try:
            stream_pairs(
                executor,
                self.inp,
                self.spec,
                totals,
                sink,
                batch_size=rt.batch_size,
                parts_folder=folder,
                quiet=rt.quiet,
            )
            ok = True
        finally:
            run.finish_output(run.out, self.spec.out_schema, sink, ok)
        self.rows_read, self.rows_written = totals.rows_read, totals.rows_written
        if totals.rows_read == 0:
            warn_no_rows(job.input, "the input")
        details: dict[str, Any] = {
            "unknown": totals.unknown.to_dict(job.on_unknown),
            "metrics": totals.metrics_dict(self.spec, self.inp.schema),
        }
        if self.topk is not None:
            table = totals.topk.to_table()
            run.write_whole(self.topk, table)
            details["top_k"] = {
                "k": job.top_k,
                "path": str(self.topk.path),
                "rows": table.num_rows,
                "users": len(distinct(column_ids(table.column(0).combine_chunks()))),
            }
        return details

    def log_summary(self, run: _Run, manifest: dict[str, Any]) -> None:
        log_pairs_summary(manifest, str(run.job.input))


class _CatalogMode(_Mode):
    name = "catalog"

    def plan(self, run: _Run) -> None:
        self.files = input_files(run.job.input, "{input}")
        if run.job.exclude is not None:
            input_files(run.job.exclude, "{exclude}")
        self.targets = [run.out]

    def prepare(self, run: _Run) -> dict[str, Any]:
        job, rt, arts = run.job, run.runtime, run.arts
        users_in = open_input(job.input, "{input}", (job.user_col,), only_columns=True)
        all_users, self.rows_read = read_users(users_in, run.ids, rt.batch_size)
        if self.rows_read == 0:
            warn_no_rows(job.input, "the users table")
        self.users, user_info = apply_unknown_policy(job, arts, all_users, str(job.input))
        self.excluded, exclude_info = None, None
        if job.exclude is not None:
            ex = open_input(
                job.exclude, "{exclude}", (job.user_col, job.movie_col), only_columns=True
            )
            self.excluded, exclude_info = read_exclusions(
                ex, run.ids, arts, self.users, rt.batch_size
            )
        graph = arts.catalog  # opened (and checked) before any work
        self.spec = catalog_spec(job, arts, rt.batch_size)
        arts.title_lookup(job.titles)  # warns once, here, when the mapping has no titles
        n_movies = len(arts.movies)
        return {
            "users": user_info,
            "candidates_per_user": n_movies,
            "catalog_graph": None if graph is None or not graph.usable else str(graph.path),
            "pairs_scored": len(self.users) * n_movies,
            "exclude": exclude_info,
        }

    def run(self, run: _Run, executor: Executor) -> dict[str, Any]:
        job, rt = run.job, run.runtime
        schema = topk_schema(run.ids, job.titles)
        sink, folder = run.output(run.out, schema)
        ok = False
        try:
            self.rows_written = stream_catalog(
                executor,
                self.spec,
                self.users,
                self.excluded,
                sink,
                per_task=self._per_task(run, executor),
                parts_folder=folder,
                quiet=rt.quiet,
            )
            ok = True
        finally:
            run.finish_output(run.out, schema, sink, ok)
        return {"top_k": {"k": job.k, "path": str(job.output), "rows": self.rows_written}}

    def _per_task(self, run: _Run, executor: Executor) -> int:
        """Locally one block of users per task; on Ray whole blocks adding up to about
        CATALOG_TASK_PAIRS pairs, at least TASKS_PER_WORKER tasks per actor."""
        per_block = self.spec.per_block
        actors = getattr(executor, "actors", None)
        if actors is None:
            return per_block
        n = max(1, len(self.users))
        per_task = min(
            max(1, CATALOG_TASK_PAIRS // self.spec.n_movies), -(-n // (TASKS_PER_WORKER * actors))
        )
        return per_block * max(1, -(-per_task // per_block))

    def log_summary(self, run: _Run, manifest: dict[str, Any]) -> None:
        log.info(
            "rec-score: top-%d of %d movies for %d users -> %s in %.2f s",
            self.spec.k,
            self.spec.n_movies,
            len(self.users),
            run.job.output,
            manifest["elapsed_seconds"],
        )


def warn_no_rows(path: Path | str, role: str) -> None:
    """An input with a header and no rows is not an error (a night with no active users):
    the outputs are written empty, with every column."""
    log.warning("%s: %s has a header but no rows; writing empty outputs", path, role)
