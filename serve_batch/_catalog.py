"""Catalog mode: every movie in the mapping is a candidate for every user; keep top-k.

Users are scored in blocks of about ``batch_size`` pairs, so memory stays flat however
many users there are (943 ml-100k users x 1682 movies = 1.6 million scores).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from serve_batch._artifacts import Artifacts, format_first_ids, load_artifacts
from serve_batch._config import DEFAULT_CATALOG_TOP_K, ScoreConfig, check_config
from serve_batch._ids import convert_id_column
from serve_batch._io import (
    AtomicOutputs,
    TableWriter,
    check_distinct_paths,
    check_input_file,
    detect_format,
    open_table,
)
from serve_batch._manifest import build_manifest, manifest_path, write_manifest
from serve_batch._topk import TOPK_SCHEMA, build_topk_table, select_block_top_k
from serve_batch.errors import DataError

log = logging.getLogger(__name__)


def score_catalog(config: ScoreConfig) -> dict[str, Any]:
    """Catalog mode of ``rec-score``: write each user's top-k movies; return the manifest.

    Movies the user already rated in ``config.exclude`` are never recommended. Users
    listed twice are scored once. Unknown users follow ``config.on_unknown``
    (fallback: movies ranked by their fallback mean, ``cold_start=True``).
    """
    if not config.all_movies:
        config = dataclasses.replace(config, all_movies=True)
    check_config(config)
    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    k = config.top_k or DEFAULT_CATALOG_TOP_K
    in_fmt = detect_format(config.input, "USERS")
    out_fmt = detect_format(config.output, "OUTPUT")
    ex_fmt = detect_format(config.exclude, "--exclude") if config.exclude else None
    check_input_file(config.input, "USERS")
    if config.exclude is not None:
        check_input_file(config.exclude, "--exclude")
    check_distinct_paths(
        [config.input, config.exclude], [config.output, manifest_path(config.output)]
    )

    with AtomicOutputs() as outputs:
        out_tmp = outputs.reserve(config.output)
        manifest_tmp = outputs.reserve(manifest_path(config.output))
        arts = load_artifacts(
            config.model_path,
            config.mapping_path,
            threads=config.threads,
            graph_opt=config.graph_opt,
        )
        all_users, rows_read = read_users(config, in_fmt)
        users, user_info = apply_unknown_policy(config, arts, all_users)
        excluded, exclude_info = (
            read_exclusions(config, ex_fmt, arts, users) if config.exclude else (None, None)
        )
        writer = TableWriter(out_tmp, out_fmt, TOPK_SCHEMA)
        try:
            score_blocks(config, arts, users, excluded, k, writer)
        finally:
            writer.close()
        manifest = build_manifest(
            mode="catalog",
            config=config,
            arts=arts,
            started_at=started_at,
            elapsed=time.perf_counter() - t0,
            rows_read=rows_read,
            rows_written=writer.rows,
            details={
                "input": str(config.input),
                "output": str(config.output),
                "top_k": {"k": k, "path": str(config.output), "rows": writer.rows},
                "users": user_info,
                "candidates_per_user": len(arts.movies),
                "pairs_scored": int(users.size) * len(arts.movies),
                "exclude": exclude_info,
            },
        )
        write_manifest(manifest_tmp, manifest)
        outputs.commit()
    log.info(
        "rec-score: top-%d of %d movies for %d users -> %s in %.2f s",
        k,
        len(arts.movies),
        users.size,
        config.output,
        manifest["elapsed_seconds"],
    )
    return manifest


def read_users(config: ScoreConfig, fmt: str) -> tuple[np.ndarray, int]:
    """All user IDs of USERS in input order (only the user column is read)."""
    reader = open_table(
        config.input,
        fmt,
        columns=(config.user_col,),
        batch_size=max(config.batch_size, 1 << 16),
        only_columns=True,
    )
    parts, rows = [], 0
    for batch in reader.iter_batches():
        parts.append(
            convert_id_column(
                batch.column(0),
                source=str(config.input),
                name=config.user_col,
                kind="user",
                row_offset=rows,
            )
        )
        rows += batch.num_rows
    if rows == 0:
        raise DataError(f"{config.input}: no data rows (only a header or an empty table)")
    return np.concatenate(parts), rows


def apply_unknown_policy(
    config: ScoreConfig, arts: Artifacts, all_users: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Distinct users (ascending) to score, after ``--unknown``; plus manifest counts."""
    users = np.unique(all_users)
    _, known, _ = arts.users.lookup(users)
    _, row_known, _ = arts.users.lookup(all_users)
    n_unknown = int((~known).sum())
    info: dict[str, Any] = {
        "rows_read": int(all_users.size),
        "distinct": int(users.size),
        "unknown": n_unknown,
        "policy": config.on_unknown,
        "first_unknown": [int(v) for v in _first_in_order(all_users[~row_known])],
    }
    if n_unknown:
        what = format_first_ids(all_users[~row_known])
        if config.on_unknown == "error":
            first_row = int(np.argmax(~row_known))
            raise DataError(
                f"{config.input}: {n_unknown} of {users.size} distinct users are missing from "
                f"the ID mapping ({what}); first at row {first_row} (0-based data row). "
                "Use --unknown fallback (rank by the fallback movie means) or --unknown skip"
            )
        if config.on_unknown == "skip":
            users = users[known]
            log.warning("%s: skipped %d unknown users (%s)", config.input, n_unknown, what)
        else:
            log.warning(
                "%s: %d unknown users ranked by fallback movie means, cold_start=True (%s)",
                config.input,
                n_unknown,
                what,
            )
    info["scored"] = int(users.size)
    return users, info


def read_exclusions(
    config: ScoreConfig, fmt: str, arts: Artifacts, users: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Sorted keys ``user_pos * n_movies + movie_pos`` of already-rated pairs to drop.

    ``user_pos`` indexes ``users``; ``movie_pos`` the mapping's movies by ID ascending
    (the candidate order). Pairs of other users or unknown movies cannot be candidates.
    """
    assert config.exclude is not None
    reader = open_table(
        config.exclude,
        fmt,
        columns=(config.user_col, config.movie_col),
        batch_size=max(config.batch_size, 1 << 16),
        only_columns=True,
    )
    n_movies = len(arts.movies)
    keys, rows = [], 0
    for batch in reader.iter_batches():
        u = convert_id_column(
            batch.column(0),
            source=str(config.exclude),
            name=config.user_col,
            kind="user",
            row_offset=rows,
        )
        m = convert_id_column(
            batch.column(1),
            source=str(config.exclude),
            name=config.movie_col,
            kind="movie",
            row_offset=rows,
        )
        rows += batch.num_rows
        if users.size == 0:
            continue
        upos = np.minimum(np.searchsorted(users, u), users.size - 1)
        _, movie_known, mpos = arts.movies.lookup(m)
        hit = (users[upos] == u) & movie_known
        keys.append(np.unique(upos[hit] * n_movies + mpos[hit]))
    merged = np.unique(np.concatenate(keys)) if keys else np.empty(0, dtype=np.int64)
    return merged, {"path": str(config.exclude), "rows_read": rows, "pairs_excluded": merged.size}


def score_blocks(
    config: ScoreConfig,
    arts: Artifacts,
    users: np.ndarray,
    excluded: np.ndarray | None,
    k: int,
    writer: TableWriter,
) -> None:
    """Score ``users x all movies`` a block of users at a time and write each top-k.

    ``excluded`` holds sorted keys ``user_position * n_movies + movie_row`` over ``users``.
    """
    n_movies = arts.movies.ids.size
    per_block = max(1, config.batch_size // n_movies)
    with tqdm(
        total=int(users.size),
        unit="users",
        desc="catalog",
        disable=True if config.quiet else None,
        leave=False,
    ) as bar:
        for a in range(0, users.size, per_block):
            block = users[a : a + per_block]
            b = a + block.size
            local = None
            if excluded is not None and excluded.size:
                lo, hi = np.searchsorted(excluded, [a * n_movies, b * n_movies])
                local = excluded[lo:hi] - a * n_movies
            writer.write(score_user_block(arts, block, local, k, config.batch_size))
            bar.update(block.size)


def score_user_block(
    arts: Artifacts,
    block: np.ndarray,
    excluded: np.ndarray | None,
    k: int,
    batch_size: int,
) -> pa.Table:
    """The top-k table of the raw user IDs in ``block`` against every movie in the mapping.

    The unit of work of catalog mode (the local loop and the Ray actors both call it).
    ``excluded``: sorted keys ``row_in_block * n_movies + movie_row`` never recommended.
    Unknown users get the fallback scores (the caller applies the unknown-ID policy).
    """
    movie_ids = arts.movies.ids
    n_movies = movie_ids.size
    pred = arts.predict_ids(
        np.repeat(block, n_movies),
        np.tile(movie_ids, block.size),
        on_unknown="fallback",
        batch_size=batch_size,
    )
    scores = pred.rank_scores.reshape(block.size, n_movies)
    if excluded is not None and excluded.size:
        if pred.rank_scores is pred.ratings:
            scores = scores.copy()  # the -inf marks must not reach the ratings
        scores.reshape(-1)[excluded] = -np.inf
    cols, valid = select_block_top_k(scores, k)
    ratings = pred.ratings.reshape(block.size, n_movies)
    kk = cols.shape[1]
    rows = np.repeat(np.arange(block.size), kk).reshape(block.size, kk)
    cold = pred.cold_start.reshape(block.size, n_movies)
    return build_topk_table(
        block[rows[valid]],
        np.broadcast_to(np.arange(1, kk + 1), cols.shape)[valid],
        movie_ids[cols[valid]],
        ratings[rows[valid], cols[valid]],
        cold[rows[valid], cols[valid]],
    )


def _first_in_order(ids: np.ndarray, show: int = 5) -> np.ndarray:
    if ids.size == 0:
        return ids
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)[:show]]
