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

from movierec.serve_batch._artifacts import Artifacts, format_first_ids
from movierec.serve_batch._catalog import score_user_block
from movierec.serve_batch._config import ScoreJob
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch._idvalues import (
    Ids,
    column_ids,
    concat,
    distinct,
    first_distinct,
    is_text,
    keep,
    take,
)
from movierec.serve_batch._io import Input, read_blocks
from movierec.serve_batch._sorting import sorted_unique
from movierec.serve_batch._string_index import StringIndex
from movierec.serve_batch._topk import topk_schema
from movierec.serve_batch.errors import DataError

log = logging.getLogger(__name__)

#: Rows per block when reading the users and the exclusions (only ID columns are read:
#: 4 MiB of int64 pairs). Each block's string-ID lookups rebuild the hash of the IDs
#: they are matched against: blocks 4x the 1 << 16 of before read bench/string_ids.py's
#: 5M string exclusions at scale 0.2 in 0.32 s of CPU instead of 0.38 (integers: 0.15
#: either way; best of 4).
READ_ROWS = 1 << 18


def read_users(inp: Input, ids: IdSchema, batch_size: int) -> tuple[Ids, int]:
    """All user IDs of the input in order (of the model's user ID type), and the rows read
    (only the user column); error messages name the file (or table) and its row."""
    read = partial(
        read_blocks,
        ids=ids,
        sides=("user",),
        batch_size=max(batch_size, READ_ROWS),
        only_columns=True,
    )
    parts = [column_ids(b.table.column(0)) for p in inp.parts for b in read(p)]
    users = concat(parts, ids.user_type)
    return users, len(users)


def apply_unknown_policy(
    job: ScoreJob, arts: Artifacts, all_users: Ids, source: str
) -> tuple[Ids, dict[str, Any]]:
    """Distinct users to score, in table order (:func:`order_users`), after
    ``on_unknown``; plus manifest counts."""
    users = order_users(arts, distinct(all_users))
    _, known, _ = arts.users.lookup(users)
    _, row_known, _ = arts.users.lookup(all_users)
    n_unknown = int((~known).sum())
    unknown_rows = keep(all_users, ~row_known)
    info: dict[str, Any] = {
        "rows_read": len(all_users),
        "distinct": len(users),
        "unknown": n_unknown,
        "policy": job.on_unknown,
        "first_unknown": first_distinct(unknown_rows, 5),
    }
    if n_unknown:
        what = format_first_ids(unknown_rows)
        if job.on_unknown == "error":
            first_row = int(np.argmax(~row_known))
            raise DataError(
                f"{source}: {n_unknown} of {len(users)} distinct users are missing from "
                f"the ID mapping ({what}); first at row {first_row} (0-based data row). "
                "Use {on_unknown} fallback (rank by the fallback movie means) or "
                "{on_unknown} skip",
                params=("on_unknown",),
            )
        if job.on_unknown == "skip":
            users = keep(users, known)
            log.warning("%s: skipped %d unknown users (%s)", source, n_unknown, what)
        else:
            log.warning(
                "%s: %d unknown users ranked by fallback movie means, cold_start=True (%s)",
                source,
                n_unknown,
                what,
            )
    info["scored"] = len(users)
    return users, info


def order_users(arts: Artifacts, users: Ids) -> Ids:
    """Distinct ``users`` in the order of the top-k tables: integer IDs ascending; string
    IDs the model knows by code point, then unknown ones by code point."""
    if not is_text(users):
        return users  # distinct() sorted them already
    _, known, pos = arts.users.lookup(users)
    return take(users, np.argsort(arts.users.sort_codes(users, known, pos), kind="stable"))


def user_positions(users: Ids | StringIndex, wanted: Ids) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` is in the distinct ``users`` (ordered as
    :func:`order_users` gives them; string IDs through their :class:`StringIndex`), and
    whether it is there at all."""
    if isinstance(users, StringIndex):
        return users.positions(wanted)
    if users.size == 0:
        return np.zeros(wanted.size, np.int64), np.zeros(wanted.size, bool)
    at = np.minimum(np.searchsorted(users, wanted), users.size - 1)
    return at, users[at] == wanted


def read_exclusions(
    inp: Input, ids: IdSchema, arts: Artifacts, users: Ids, batch_size: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Sorted keys ``user_pos * n_movies + movie_pos`` of already-rated pairs to drop.

    ``user_pos`` indexes ``users``; ``movie_pos`` the mapping's movies by ID ascending
    (the candidate order). Pairs of other users or unknown movies cannot be candidates.
    """
    n_movies = len(arts.movies)
    keys, rows = [], 0
    where = StringIndex(users) if is_text(users) else users  # built once for every block
    for part in inp.parts:
        for block in read_blocks(
            part,
            ids,
            ("user", "movie"),
            max(batch_size, READ_ROWS),
            only_columns=True,
        ):
            rows += block.table.num_rows
            if len(users) == 0:
                continue
            u, m = column_ids(block.table.column(0)), column_ids(block.table.column(1))
            upos, user_hit = user_positions(where, u)
            _, movie_known, mpos = arts.movies.lookup(m)
            hit = user_hit & movie_known
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
    ids: IdSchema = IdSchema()  # the table's ID columns


@dataclass(frozen=True)
class CatalogTask:
    """Distinct users ``users`` (positions ``first``.. among all users scored) and the
    sorted keys ``(position - first) * n_movies + movie_pos`` of their exclusions."""

    users: Ids
    first: int
    excluded: np.ndarray | None


def catalog_tasks(
    users: Ids, excluded: np.ndarray | None, n_movies: int, per_task: int
) -> Iterator[CatalogTask]:
    """``users`` cut into tasks of ``per_task`` users, each with its own exclusions."""
    for a in range(0, len(users), per_task):
        b = min(a + per_task, len(users))
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
    for a in range(0, len(users), spec.per_block):
        b = min(a + spec.per_block, len(users))
        local = None
        if excluded is not None and excluded.size:
            lo, hi = np.searchsorted(excluded, [a * n, b * n])
            local = excluded[lo:hi] - a * n
        tables.append(
            score_user_block(arts, users[a:b], local, spec.k, spec.batch_size, titles, spec.ids)
        )
    empty = topk_schema(spec.ids, spec.titles).empty_table
    table = pa.concat_tables(tables) if tables else empty()
    return CatalogResult(task.first, len(users), table.num_rows, table)


class CatalogBlockFn:
    """:func:`score_catalog_task` with its spec, for an executor to map over tasks."""

    def __init__(self, spec: CatalogSpec) -> None:
        self.spec = spec

    def __call__(self, arts: Artifacts, task: CatalogTask) -> CatalogResult:
        return score_catalog_task(arts, task, self.spec)
