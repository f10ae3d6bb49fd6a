"""Pairs mode: every (user, movie) row of the input scored, one block at a time.

:func:`score_pairs_block` is the unit of work of both engines (a block of input rows in;
the scored rows, the block's unknown-ID tally, RMSE/MAE sums and top-k candidates out).
:class:`PairsTotals` merges the blocks' results in input order; the driver
(``movierec.serve_batch._driver``) reads, writes and builds the manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from movierec.serve_batch import contract
from movierec.serve_batch._arrow import from_numpy, to_numpy
from movierec.serve_batch._artifacts import Artifacts
from movierec.serve_batch._config import ScoreJob
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch._idvalues import column_ids, keep, take
from movierec.serve_batch._io import Block
from movierec.serve_batch._tally import ErrorMetrics, UnknownTally
from movierec.serve_batch._topk import TitleLookup, TopKAccumulator, select_top_k
from movierec.serve_batch.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairsSpec:
    """What :func:`score_pairs_block` needs besides the model (small: shipped to workers)."""

    ids: IdSchema  # the input's ID columns and the model's ID types
    on_unknown: str
    batch_size: int
    top_k: int | None
    out_schema: pa.Schema
    rating_index: int | None  # input column RMSE/MAE are computed against

    @property
    def user_col(self) -> str:
        return self.ids.user_col

    @property
    def movie_col(self) -> str:
        return self.ids.movie_col

    @property
    def id_columns(self) -> tuple[str, str]:
        return self.ids.id_columns


def pairs_spec(
    job: ScoreJob, schema: pa.Schema, source: str, batch_size: int, ids: IdSchema
) -> PairsSpec:
    """Check the input's columns and derive the output schema (the input's columns, the ID
    columns in the model's ID types, then ``predicted_rating`` and ``cold_start``).

    ``ids``: the run's ID columns (``job.user_col`` / ``job.movie_col``, resolved) with
    the model's ID types."""
    for name in (contract.PREDICTION_COL, contract.COLD_START_COL):
        if name in schema.names:
            raise DataError(
                f"{source}: already has a column {name!r}, which rec-score writes; "
                "rename or drop it"
            )
    id_fields = {ids.user_col: ids.field("user"), ids.movie_col: ids.field("movie")}
    fields = [id_fields.get(f.name, f) for f in schema]
    fields += [
        pa.field(contract.PREDICTION_COL, pa.float32()),
        pa.field(contract.COLD_START_COL, pa.bool_()),
    ]
    return PairsSpec(
        ids=ids,
        on_unknown=job.on_unknown,
        batch_size=batch_size,
        top_k=job.top_k,
        out_schema=pa.schema(fields),  # input metadata (e.g. pandas') no longer fits
        rating_index=_rating_column(job, schema, source),
    )


def _rating_column(job: ScoreJob, schema: pa.Schema, source: str) -> int | None:
    name = contract.RATING_COL
    if name not in schema.names or name in job.id_columns:
        return None
    t = schema.field(name).type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return schema.get_field_index(name)
    log.warning("%s: %s", source, rating_note(t))
    return None


def rating_note(t: pa.DataType) -> str:
    return f"column {contract.RATING_COL!r} has type {t}, not a number; RMSE/MAE not computed"


@dataclass
class PairsResult:
    """What one block gives the driver. ``table`` is None once written elsewhere (a
    folder output's part) or when the block was not scored (``failed``)."""

    first_row: int
    rows: int
    rows_written: int
    table: pa.RecordBatch | None
    tally: UnknownTally
    metrics: ErrorMetrics | None = None
    topk: tuple | None = None  # users, movies (IDs), ratings, rank scores, cold
    kept: np.ndarray | None = None  # rows kept, where some were skipped
    failed: bool = False  # on_unknown="error" and the block has unknown IDs
    busy_seconds: float = 0.0

    @property
    def first(self) -> int:
        return self.first_row


def score_pairs_block(
    arts: Artifacts, block: Block, spec: PairsSpec, count_only: bool = False
) -> PairsResult:
    """Score one block as ``rec-score`` writes it: its IDs looked up in the model's maps,
    then :meth:`Artifacts.predict_found` (the second half of ``predict_ids``). Under
    ``on_unknown="error"`` a block with unknown IDs is only counted (``failed``);
    ``count_only`` counts without scoring (the rest of a failed run)."""
    batch = block.table
    schema = batch.schema
    ui, mi = schema.get_field_index(spec.user_col), schema.get_field_index(spec.movie_col)
    users, movies = column_ids(batch.column(ui)), column_ids(batch.column(mi))
    user_found, movie_found = arts.lookup_ids(users, movies)
    tally = UnknownTally()
    tally.add(users, movies, ~user_found[1], ~movie_found[1], block.first_row)
    n = batch.num_rows
    if count_only or (spec.on_unknown == "error" and tally.rows_any):
        return PairsResult(block.first_row, n, 0, None, tally, failed=tally.rows_any > 0)
    pred = arts.predict_found(user_found, movie_found, spec.on_unknown, spec.batch_size)
    kept = pred.kept
    cols = batch.columns
    all_kept = bool(kept.all())
    if not all_kept:
        mask = from_numpy(kept)
        cols = [c.filter(mask) for c in cols]
    cols.append(from_numpy(pred.ratings))
    cols.append(from_numpy(pred.cold_start))
    table = pa.RecordBatch.from_arrays(cols, schema=spec.out_schema)
    result = PairsResult(
        block.first_row, n, table.num_rows, table, tally, kept=None if all_kept else kept
    )
    if spec.rating_index is not None:
        truth = to_numpy(cols[spec.rating_index].cast(pa.float64()))
        result.metrics = ErrorMetrics()
        result.metrics.add(truth, pred.ratings)
    if spec.top_k is not None and table.num_rows:
        (_, uk, upos), (_, mk, mpos) = user_found, movie_found
        if not all_kept:
            users, movies = keep(users, kept), keep(movies, kept)
            uk, upos, mk, mpos = uk[kept], upos[kept], mk[kept], mpos[kept]
        idx, _ = select_top_k(
            arts.users.sort_codes(users, uk, upos),
            arts.movies.sort_codes(movies, mk, mpos),
            pred.rank_scores,
            spec.top_k,
            pred.cold_start,
        )
        arrays = (users, movies, pred.ratings, pred.rank_scores, pred.cold_start)
        result.topk = tuple(take(a, idx) for a in arrays)
    return result


class PairsBlockFn:
    """:func:`score_pairs_block` with its spec, for an executor to map over blocks.

    Once a block has failed under ``on_unknown="error"`` the driver sets ``count_only``:
    blocks still to come in this process are counted, not scored (the error message
    gives the counts over the whole input). Workers elsewhere keep their own copy."""

    def __init__(self, spec: PairsSpec) -> None:
        self.spec = spec
        self.count_only = False

    def __call__(self, arts: Artifacts, block: Block) -> PairsResult:
        return score_pairs_block(arts, block, self.spec, self.count_only)


class PairsTotals:
    """The merged results of every block, added in input order."""

    def __init__(
        self,
        top_k: int | None,
        titles: TitleLookup | None,
        arts: Artifacts | None = None,
        ids: IdSchema | None = None,
    ) -> None:
        self.rows_read = 0
        self.rows_written = 0
        self.failed = False
        self.unknown = UnknownTally()
        self.metrics = ErrorMetrics()
        self.topk = None
        if top_k:
            maps = None if arts is None else (arts.users, arts.movies)
            self.topk = TopKAccumulator(top_k, titles=titles, maps=maps, ids=ids)

    def add(self, result: PairsResult) -> None:
        self.rows_read += result.rows
        self.rows_written += result.rows_written
        self.failed |= result.failed
        self.unknown.merge(result.tally)
        if result.metrics is not None:
            self.metrics.merge(result.metrics)
        if self.topk is not None and result.topk is not None:
            self.topk.add_selected(*result.topk)

    def metrics_dict(self, spec: PairsSpec, schema: pa.Schema) -> dict[str, Any] | None:
        if spec.rating_index is not None:
            return {"rating_column": contract.RATING_COL, **self.metrics.to_dict()}
        name = contract.RATING_COL
        if name in schema.names and name not in spec.id_columns:
            return {"skipped": rating_note(schema.field(name).type)}
        return None


def log_pairs_summary(manifest: dict[str, Any], source: str) -> None:
    unknown = manifest["unknown"]
    if unknown["rows_with_unknown_id"]:
        log.warning(
            "%s: %d rows had IDs missing from the mapping (%d unknown users, %d unknown "
            "movies); on_unknown=%s: %s",
            source,
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
        manifest["output"],
        manifest["elapsed_seconds"],
        manifest["pairs_per_second"] or 0.0,
    )
