"""Catalog mode's driver side: the users to score, their exclusions, and blocks of users.

The unit of work is :func:`movierec.serve_batch._catalog.score_user_block` (a block of
users in, their top-k rows out); :func:`score_catalog_task` runs it over the blocks of
one task (one block locally, several on a Ray actor). Users are read, the unknown-ID
policy applied and the exclusions read here, once, by the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from movierec.serve_batch._arrow import to_numpy
from movierec.serve_batch._artifacts import Artifacts, format_first_ids
from movierec.serve_batch._catalog import score_user_block
from movierec.serve_batch._config import ScoreJob
from movierec.serve_batch._io import Input, read_blocks
from movierec.serve_batch._sorting import sorted_unique
from movierec.serve_batch._topk import topk_schema
from movierec.serve_batch.errors import DataError

log = logging.getLogger(__name__)

#: Rows per block when reading the users and the exclusions (only ID columns are read).
READ_ROWS = 1 << 16


def read_users(inp: Input, job: ScoreJob, batch_size: int) -> tuple[np.ndarray, int]:
    """All user IDs of the input in order, and the rows read (only the user column);
    error messages name the file (or table) and its row."""
    read = partial(
        read_blocks,
        columns=(job.user_col,),
        kinds=("user",),
        batch_size=max(batch_size, READ_ROWS),
        only_columns=True,
    )
    parts = [b.table.column(0) for p in inp.parts for b in read(p)]
    if not parts:
        return np.empty(0, dtype=np.int64), 0
    users = np.concatenate([to_numpy(c) for c in parts])
    return users, int(users.size)


def apply_unknown_policy(
    job: ScoreJob, arts: Artifacts, all_users: np.ndarray, source: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Distinct users (ascending) to score, after ``on_unknown``; plus manifest counts."""
    users = sorted_unique(all_users)
    _, known, _ = arts.users.lookup(users)
    _, row_known, _ = arts.users.lookup(all_users)
    n_unknown = int((~known).sum())
    info: dict[str, Any] = {
        "rows_read": int(all_users.size),
        "distinct": int(users.size),
        "unknown": n_unknown,
        "policy": job.on_unknown,
        "first_unknown": [int(v) for v in _first_in_order(all_users[~row_known])],
    }
    if n_unknown:
        what = format_first_ids(all_users[~row_known])
        if job.on_unknown == "error":
            first_row = int(np.argmax(~row_known))
            raise DataError(
                f"{source}: {n_unknown} of {users.size} distinct users are missing from "
                f"the ID mapping ({what}); first at row {first_row} (0-based data row). "
                "Use {on_unknown} fallback (rank by the fallback movie means) or "
                "{on_unknown} skip",
                params=("on_unknown",),
            )
        if job.on_unknown == "skip":
            users = users[known]
            log.warning("%s: skipped %d unknown users (%s)", source, n_unknown, what)
        else:
            log.warning(
                "%s: %d unknown users ranked by fallback movie means, cold_start=True (%s)",
                source,
                n_unknown,
                what,
            )
    info["scored"] = int(users.size)
    return users, info


def read_exclusions(
    inp: Input, job: ScoreJob, arts: Artifacts, users: np.ndarray, batch_size: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Sorted keys ``user_pos * n_movies + movie_pos`` of already-rated pairs to drop.

    ``user_pos`` indexes ``users``; ``movie_pos`` the mapping's movies by ID ascending
    (the candidate order). Pairs of other users or unknown movies cannot be candidates.
    """
    n_movies = len(arts.movies)
    keys, rows = [], 0
    for part in inp.parts:
        for block in read_blocks(
            part,
            (job.user_col, job.movie_col),
            ("user", "movie"),
            max(batch_size, READ_ROWS),
            only_columns=True,
        ):
            rows += block.table.num_rows
            if users.size == 0:
                continue
            u, m = to_numpy(block.table.column(0)), to_numpy(block.table.column(1))
            upos = np.minimum(np.searchsorted(users, u), users.size - 1)
            _, movie_known, mpos = arts.movies.lookup(m)
            hit = (users[upos] == u) & movie_known
            keys.append(upos[hit] * n_movies + mpos[hit])
    merged = sorted_unique(np.concatenate(keys)) if keys else np.empty(0, dtype=np.int64)
    return merged, {"path": inp.label, "rows_read": rows, "pairs_excluded": merged.size}


@dataclass(frozen=True)
class CatalogSpec:
    """What :func:`score_catalog_task` needs besides the model."""

    k: int
    batch_size: int
    n_movies: int
    per_block: int  # users per score_user_block call (_catalog.users_per_block)
    titles: bool = False


@dataclass(frozen=True)
class CatalogTask:
    """Distinct users ``users`` (positions ``first``.. among all users scored) and the
    sorted keys ``(position - first) * n_movies + movie_pos`` of their exclusions."""

    users: np.ndarray
    first: int
    excluded: np.ndarray | None


def catalog_tasks(
    users: np.ndarray, excluded: np.ndarray | None, n_movies: int, per_task: int
) -> Iterator[CatalogTask]:
    """``users`` cut into tasks of ``per_task`` users, each with its own exclusions."""
    for a in range(0, users.size, per_task):
        b = min(a + per_task, users.size)
        local = None
        if excluded is not None and excluded.size:
            lo, hi = np.searchsorted(excluded, [a * n_movies, b * n_movies])
            local = excluded[lo:hi] - a * n_movies
        yield CatalogTask(users[a:b], a, local)


@dataclass
class CatalogResult:
    """The top-k rows of one task (None once written elsewhere)."""

    first: int
    users: int
    rows_written: int
    table: pa.Table | None
    busy_seconds: float = 0.0


def score_catalog_task(arts: Artifacts, task: CatalogTask, spec: CatalogSpec) -> CatalogResult:
    """:func:`score_user_block` on each block of ``spec.per_block`` users of the task."""
    if len(arts.movies) != spec.n_movies:
        raise DataError(f"the model has {len(arts.movies)} movies, the driver saw {spec.n_movies}")
    titles = arts.titles if spec.titles else None  # the driver warned if empty
    n, users, excluded = spec.n_movies, task.users, task.excluded
    tables = []
    for a in range(0, users.size, spec.per_block):
        b = min(a + spec.per_block, users.size)
        local = None
        if excluded is not None and excluded.size:
            lo, hi = np.searchsorted(excluded, [a * n, b * n])
            local = excluded[lo:hi] - a * n
        tables.append(score_user_block(arts, users[a:b], local, spec.k, spec.batch_size, titles))
    table = pa.concat_tables(tables) if tables else topk_schema(spec.titles).empty_table()
    return CatalogResult(task.first, int(users.size), table.num_rows, table)


class CatalogBlockFn:
    """:func:`score_catalog_task` with its spec, for an executor to map over tasks."""

    def __init__(self, spec: CatalogSpec) -> None:
        self.spec = spec

    def __call__(self, arts: Artifacts, task: CatalogTask) -> CatalogResult:
        return score_catalog_task(arts, task, self.spec)


def _first_in_order(ids: np.ndarray, show: int = 5) -> np.ndarray:
    if ids.size == 0:
        return ids
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)[:show]]
