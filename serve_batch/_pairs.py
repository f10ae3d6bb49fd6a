"""Pairs mode: score every (user, movie) row of INPUT into OUTPUT, batch by batch."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from movierec.serve_batch import contract
from movierec.serve_batch._arrow import from_numpy, to_numpy
from movierec.serve_batch._artifacts import SHOW_IDS, Artifacts, load_artifacts
from movierec.serve_batch._config import ScoreConfig, check_config
from movierec.serve_batch._ids import convert_id_column
from movierec.serve_batch._io import (
    ROW_GROUP_ROWS,
    BackgroundWriter,
    Prefetch,
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
from movierec.serve_batch._topk import TOPK_PLAIN_COLUMNS, TopKAccumulator
from movierec.serve_batch.atomic import AtomicOutputs
from movierec.serve_batch.errors import DataError, UsageError

log = logging.getLogger(__name__)

#: Read INPUT ahead and write OUTPUT on threads of their own while batches are scored
#: (measured by bench/score.py).
OVERLAP_IO = True


def score_file(config: ScoreConfig) -> dict[str, Any]:
    """Pairs mode of ``rec-score``: write OUTPUT (+ top-k table) and return the manifest.

    Streams record batches: memory does not grow with the input (the top-k state grows
    with users x K). Every batch goes through :meth:`Artifacts.predict_ids`, the same
    function the exporter's parity check calls. Nothing is renamed into place unless the
    whole run succeeds.
    """
    check_config(config)
    if config.all_movies:
        raise UsageError("all_movies=True is catalog mode: call score_catalog")
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    in_fmt = detect_format(config.input, "INPUT")
    out_fmt = detect_format(config.output, "OUTPUT")
    topk_path = None
    if config.top_k is not None:
        topk_path = config.top_k_output or insert_before_extension(config.output, "topk")
        topk_fmt = detect_format(topk_path, "top-k output")
    check_input_file(config.input, "INPUT")
    check_distinct_paths([config.input], [config.output, topk_path, manifest_path(config.output)])

    with AtomicOutputs() as outputs:
        out_tmp = outputs.reserve(config.output)
        topk_tmp = outputs.reserve(topk_path) if topk_path else None
        manifest_tmp = outputs.reserve(manifest_path(config.output))
        arts = load_artifacts(
            config.model_path,
            config.mapping_path,
            threads=config.threads,
            graph_opt=config.graph_opt,
        )
        reader = open_table(
            config.input,
            in_fmt,
            columns=(config.user_col, config.movie_col),
            batch_size=config.batch_size,
        )
        run = _PairsRun(config, arts, reader)
        writer = TableWriter(
            out_tmp, out_fmt, run.out_schema, plain_columns=[contract.PREDICTION_COL]
        )
        try:
            run.stream(writer)
        finally:
            writer.close()
        if run.rows_read == 0:
            warn_no_rows(config.input, "INPUT")
        details: dict[str, Any] = {
            "input": str(config.input),
            "output": str(config.output),
            "unknown": run.unknown.to_dict(config.on_unknown),
            "metrics": run.metrics_dict(),
        }
        if topk_path is not None:
            table = run.topk.to_table()
            topk_writer = TableWriter(
                topk_tmp, topk_fmt, table.schema, plain_columns=TOPK_PLAIN_COLUMNS
            )
            try:
                topk_writer.write(table)
            finally:
                topk_writer.close()
            details["top_k"] = {
                "k": config.top_k,
                "path": str(topk_path),
                "rows": table.num_rows,
                "users": len(np.unique(to_numpy(table.column(0)))),
            }
        manifest = build_manifest(
            mode="pairs",
            config=config,
            arts=arts,
            started_at=started_at,
            elapsed=time.perf_counter() - t0,
            rows_read=run.rows_read,
            rows_written=writer.rows,
            details=details,
        )
        write_manifest(manifest_tmp, manifest)
        outputs.commit()
    run.log_summary(manifest)
    return manifest


class _PairsRun:
    """State of one pairs-mode run (counts, tallies, top-k); one method per step."""

    def __init__(self, config: ScoreConfig, arts: Artifacts, reader: TableReader) -> None:
        self.config, self.arts, self.reader = config, arts, reader
        self.source = str(config.input)
        schema = reader.schema
        for name in (contract.PREDICTION_COL, contract.COLD_START_COL):
            if name in schema.names:
                raise DataError(
                    f"{self.source}: already has a column {name!r}, which rec-score writes; "
                    "rename or drop it"
                )
        self.user_i = schema.get_field_index(config.user_col)
        self.movie_i = schema.get_field_index(config.movie_col)
        fields = list(schema)
        fields[self.user_i] = pa.field(config.user_col, pa.int64())
        fields[self.movie_i] = pa.field(config.movie_col, pa.int64())
        fields += [
            pa.field(contract.PREDICTION_COL, pa.float32()),
            pa.field(contract.COLD_START_COL, pa.bool_()),
        ]
        self.out_schema = pa.schema(fields)  # input metadata (e.g. pandas') no longer fits
        self.rating_i, self.metrics_note = self._find_rating_column(schema)
        self.metrics = ErrorMetrics()
        self.unknown = UnknownTally()
        self.topk = (
            TopKAccumulator(config.top_k, titles=arts.title_lookup(config.titles))
            if config.top_k
            else None
        )
        self.rows_read = 0

    def _find_rating_column(self, schema: pa.Schema) -> tuple[int | None, str | None]:
        name = contract.RATING_COL
        if name not in schema.names or name in (self.config.user_col, self.config.movie_col):
            return None, None
        t = schema.field(name).type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return schema.get_field_index(name), None
        note = f"column {name!r} has type {t}, not a number; RMSE/MAE not computed"
        log.warning("%s: %s", self.source, note)
        return None, note

    def stream(self, writer: TableWriter) -> None:
        """Score every batch. With ``OVERLAP_IO``, INPUT is read ahead and OUTPUT written
        on threads of their own, overlapping the scoring."""
        if not OVERLAP_IO:
            self._stream(self.reader.iter_batches(), writer)
            return
        batches = Prefetch(self.reader.iter_batches())
        # room for a whole row group while the writer encodes the previous one, so that
        # scoring never waits on it (bench/score.py)
        depth = max(2, ROW_GROUP_ROWS // max(1, self.config.batch_size) + 1)
        out = BackgroundWriter(writer, depth=depth)
        try:
            self._stream(batches, out)
        except BaseException:
            out.abort()
            raise
        finally:
            batches.close()
        out.close()

    def _stream(self, batches, writer: TableWriter | BackgroundWriter) -> None:
        cfg = self.config
        with tqdm(
            total=self.reader.num_rows,
            unit="rows",
            unit_scale=True,
            desc="scoring",
            disable=True if cfg.quiet else None,
            leave=False,
        ) as bar:
            for batch in batches:
                n = batch.num_rows
                users, movies = self._convert_ids(batch)
                try:
                    pred = self.arts.predict_ids(
                        users, movies, on_unknown=cfg.on_unknown, batch_size=cfg.batch_size
                    )
                except DataError:
                    if cfg.on_unknown != "error":
                        raise
                    self._raise_unknown(users, movies, batches)
                self.unknown.add(
                    users, movies, pred.unknown_user, pred.unknown_movie, self.rows_read
                )
                kept = pred.kept
                cols = batch.columns
                if kept.all():
                    cols[self.user_i] = _as_int64_array(cols[self.user_i], users)
                    cols[self.movie_i] = _as_int64_array(cols[self.movie_i], movies)
                else:
                    mask = from_numpy(kept)
                    cols = [c.filter(mask) for c in cols]
                    users, movies = users[kept], movies[kept]
                    cols[self.user_i] = from_numpy(users)
                    cols[self.movie_i] = from_numpy(movies)
                cols.append(from_numpy(pred.ratings))
                cols.append(from_numpy(pred.cold_start))
                writer.write(pa.RecordBatch.from_arrays(cols, schema=self.out_schema))
                if self.rating_i is not None:
                    truth = to_numpy(cols[self.rating_i].cast(pa.float64()))
                    self.metrics.add(truth, pred.ratings)
                if self.topk is not None:
                    self.topk.add(users, movies, pred.ratings, pred.rank_scores, pred.cold_start)
                self.rows_read += n
                bar.update(n)

    def _convert_ids(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        users = convert_id_column(
            batch.column(self.user_i),
            source=self.source,
            name=cfg.user_col,
            kind="user",
            row_offset=self.rows_read,
        )
        movies = convert_id_column(
            batch.column(self.movie_i),
            source=self.source,
            name=cfg.movie_col,
            kind="movie",
            row_offset=self.rows_read,
        )
        return users, movies

    def _raise_unknown(self, users: np.ndarray, movies: np.ndarray, batches) -> None:
        """``--unknown error``: finish counting over the rest of the file, then fail."""
        tally = UnknownTally()
        rows = self.rows_read
        while True:
            _, uk, _ = self.arts.users.lookup(users)
            _, mk, _ = self.arts.movies.lookup(movies)
            tally.add(users, movies, ~uk, ~mk, rows)
            rows += users.size
            batch = next(batches, None)
            if batch is None:
                break
            self.rows_read = rows
            users, movies = self._convert_ids(batch)
        raise DataError(f"{self.source}: {tally.describe(rows)}")

    def metrics_dict(self) -> dict[str, Any] | None:
        if self.rating_i is None:
            return {"skipped": self.metrics_note} if self.metrics_note else None
        return {"rating_column": contract.RATING_COL, **self.metrics.to_dict()}

    def log_summary(self, manifest: dict[str, Any]) -> None:
        unknown = manifest["unknown"]
        if unknown["rows_with_unknown_id"]:
            log.warning(
                "%s: %d rows had IDs missing from the mapping (%d unknown users, %d unknown "
                "movies); --unknown %s: %s",
                self.source,
                unknown["rows_with_unknown_id"],
                unknown["distinct_unknown_users"],
                unknown["distinct_unknown_movies"],
                unknown["policy"],
                "scored with the fallback means (cold_start=True)"
                if unknown["policy"] == "fallback"
                else "dropped",
            )
        log.info(
            "rec-score: %d rows -> %s in %.2f s (%.0f pairs/s)",
            manifest["rows_written"],
            self.config.output,
            manifest["elapsed_seconds"],
            manifest["pairs_per_second"] or 0.0,
        )


def warn_no_rows(path: Path, role: str) -> None:
    """An input with a header and no rows is not an error (a night with no active users):
    the outputs are written empty, with every column."""
    log.warning("%s: %s has a header but no rows; writing empty outputs", path, role)


def _as_int64_array(original: pa.Array, values: np.ndarray) -> pa.Array:
    if original.type == pa.int64() and original.null_count == 0:
        return original
    return from_numpy(values, np.int64)


class DistinctIds:
    """Distinct-ID count and the first few IDs in order of appearance, streaming."""

    def __init__(self, show: int = SHOW_IDS) -> None:
        self.show = show
        self.first: list[int] = []
        self._merged = np.empty(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def add(self, ids: np.ndarray) -> None:
        if ids.size == 0:
            return
        uniq, first_at = np.unique(ids, return_index=True)
        if len(self.first) < self.show:
            for v in ids[np.sort(first_at)]:
                if len(self.first) >= self.show:
                    break
                if int(v) not in self.first:
                    self.first.append(int(v))
        self._pending.append(uniq)
        self._pending_n += uniq.size
        if self._pending_n > max(self._merged.size, 1 << 16):
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            self._merged = np.unique(np.concatenate([self._merged, *self._pending]))
            self._pending, self._pending_n = [], 0

    def count(self) -> int:
        self._merge()
        return int(self._merged.size)


class UnknownTally:
    """Counts of rows and distinct IDs missing from the mapping, over the whole input."""

    def __init__(self) -> None:
        self.rows_user = 0
        self.rows_movie = 0
        self.rows_any = 0
        self.first_row: int | None = None
        self.users = DistinctIds()
        self.movies = DistinctIds()

    def add(
        self,
        users: np.ndarray,
        movies: np.ndarray,
        unknown_user: np.ndarray,
        unknown_movie: np.ndarray,
        row_offset: int,
    ) -> None:
        any_unknown = unknown_user | unknown_movie
        n_any = int(any_unknown.sum())
        if not n_any:
            return
        if self.first_row is None:
            self.first_row = row_offset + int(np.argmax(any_unknown))
        self.rows_any += n_any
        self.rows_user += int(unknown_user.sum())
        self.rows_movie += int(unknown_movie.sum())
        self.users.add(users[unknown_user])
        self.movies.add(movies[unknown_movie])

    def to_dict(self, policy: str) -> dict[str, Any]:
        return {
            "policy": policy,
            "action": {
                "fallback": "scored with fallback means, cold_start=True",
                "skip": "dropped",
            }.get(policy, "error"),
            "rows_with_unknown_id": self.rows_any,
            "rows_with_unknown_user": self.rows_user,
            "rows_with_unknown_movie": self.rows_movie,
            "distinct_unknown_users": self.users.count(),
            "distinct_unknown_movies": self.movies.count(),
            "first_unknown_users": self.users.first,
            "first_unknown_movies": self.movies.first,
            "rows_cold_start": self.rows_any if policy == "fallback" else 0,
            "rows_skipped": self.rows_any if policy == "skip" else 0,
        }

    def describe(self, rows_read: int) -> str:
        parts = []
        for kind, rows, ids in (
            ("user", self.rows_user, self.users),
            ("movie", self.rows_movie, self.movies),
        ):
            if rows:
                shown = ", ".join(map(str, ids.first))
                more = ", ..." if ids.count() > len(ids.first) else ""
                parts.append(
                    f"{rows} rows with an unknown {kind} ID ({ids.count()} distinct: {shown}{more})"
                )
        return (
            f"{self.rows_any} of {rows_read} rows have IDs missing from the ID mapping: "
            f"{'; '.join(parts)}; first at row {self.first_row} (0-based data row). "
            "Use --unknown fallback or --unknown skip to score or drop them"
        )
