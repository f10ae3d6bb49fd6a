"""Catalog mode: every movie in the mapping is a candidate for every user; keep top-k.

With a catalog graph (``catalog.onnx``) each user's candidates come from a cheap upper
bound of every movie's rank score, and only candidates are scored through the model, so
a catalog costs a few matrix products per pair (162,541 users x 59,047 movies = 9.6
billion pairs); without one every pair goes through the model. Users are scored in
blocks of about ``batch_size`` pairs through the model; the exclusions stay sorted int64
keys. Memory stays flat however many users and movies there are. This module is the
unit of work (:func:`score_user_block`); the driver side (users, exclusions, blocks) is
``movierec.serve_batch._catalog_job``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from movierec.serve_batch._artifacts import Artifacts
from movierec.serve_batch._catalog_graph import CatalogGraph
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch._idvalues import Ids, take
from movierec.serve_batch._topk import TitleLookup, build_topk_table, select_block_top_k


def users_per_block(arts: Artifacts, k: int, batch_size: int) -> int:
    """Users in one unit of work (:func:`score_user_block`): about ``batch_size`` pairs
    go through the pairs graph per block. With a catalog graph a user needs about
    ``k + CATALOG_MARGIN`` of them, without one every movie. The local loop and the Ray
    engine both use this, so their onnxruntime calls see the same batches."""
    n_movies = len(arts.movies)
    graph = arts.catalog
    per_user = n_movies
    if graph is not None and graph.usable:
        per_user = min(n_movies, k + CATALOG_MARGIN)
    return max(1, batch_size // per_user)


def score_user_block(
    arts: Artifacts,
    block: Ids,
    excluded: np.ndarray | None,
    k: int,
    batch_size: int,
    titles: TitleLookup | None = None,
    ids: IdSchema | None = None,
) -> pa.Table:
    """The top-k table of the raw user IDs in ``block`` against every movie in the mapping
    (``ids``: the table's ID columns).

    The unit of work of catalog mode (the local loop and the Ray actors both call it).
    ``excluded``: sorted keys ``row_in_block * n_movies + movie_pos`` never recommended
    (``movie_pos`` indexes the mapping's movies by ID ascending). Unknown users get the
    fallback scores (the caller applies the unknown-ID policy).

    With a catalog graph, known users are scored by it (see :func:`top_k_by_catalog`);
    the table is the same as scoring every pair through the model.
    """
    graph = arts.catalog if len(block) else None
    if graph is None or not graph.usable:
        return score_block_by_pairs(arts, block, excluded, k, batch_size, titles, ids)
    user_found = arts.users.lookup(block)
    user_rows, known, _ = user_found
    on_graph = np.flatnonzero(known)
    parts = []
    if on_graph.size:
        found, unsure = top_k_by_catalog(
            arts, graph, user_rows[known], _sub_keys(excluded, on_graph, arts), k, batch_size
        )
        user_at, ranks, movie_pos, ratings, scores = found
        cold = np.zeros(ratings.size, bool)
        parts.append((on_graph[user_at], ranks, movie_pos, ratings, scores, cold))
        rest = np.sort(np.concatenate([np.flatnonzero(~known), on_graph[unsure]]))
    else:
        rest = np.arange(len(block))
    # every pair of the remaining users, a few users at a time (memory: users x movies)
    step = max(1, batch_size // len(arts.movies))
    for a in range(0, rest.size, step):
        some = rest[a : a + step]
        at, ranks, movie_pos, ratings, scores, cold = _top_k_by_pairs(
            arts, tuple(f[some] for f in user_found), _sub_keys(excluded, some, arts), k, batch_size
        )
        parts.append((some[at], ranks, movie_pos, ratings, scores, cold))
    user_at, ranks, movie_pos, ratings, scores, cold = (
        np.concatenate(c) for c in zip(*parts, strict=True)
    )
    order = np.lexsort((ranks, user_at))
    return build_topk_table(
        take(block, user_at[order]),
        ranks[order],
        arts.movies.ids_at(movie_pos[order]),
        ratings[order],
        scores[order],
        cold[order],
        titles,
        ids,
    )


#: Candidates per user of the catalog graph's first call beyond K (64 at the default
#: K = 10), all scored through the model; users whose candidates may reach further are
#: asked again with CATALOG_GROWTH times as many, up to every movie. Movies whose bound
#: reached the 10th best score, per user: 27 on average and 60 at most on the synthetic
#: MovieLens-25M-shaped model at scale 0.2 (bench/catalog_scale.py); 11 on average and
#: 33 at most on the default model trained on ml-latest-small (12 and 215 with its
#: rank_mix set to 4). With K + 16 candidates, 65% of the synthetic model's users needed
#: a second call; with K + 54, 6 of 8,000.
CATALOG_MARGIN = 54
CATALOG_GROWTH = 8
#: How far a pair's rank score from the model may exceed the graph's bound, relative to
#: the score (at least this much absolute): both are float32 sums of the same terms in
#: another order, about 1e-6 apart.
CATALOG_TOLERANCE = 1e-3


def _tolerance(scores: np.ndarray) -> np.ndarray:
    return CATALOG_TOLERANCE * np.maximum(1.0, np.abs(scores))


def top_k_by_catalog(
    arts: Artifacts,
    graph: CatalogGraph,
    user_rows: np.ndarray,
    excluded: np.ndarray | None,
    k: int,
    batch_size: int,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Top-k of known users (embedding ``user_rows``) via the catalog graph, exactly as the
    pairs path ranks them.

    The graph gives each user's ``K + CATALOG_MARGIN`` movies with the highest upper
    bounds of the rank score; they are scored through the model (the pairs path's own
    numbers). With ``S`` the K-th best of those scores, only a movie whose bound reaches
    ``S`` (less the tolerance) can belong in the top K (or tie with its last): when the
    last candidate's bound is below that, the user is done; otherwise the user is asked
    again with CATALOG_GROWTH times as many candidates (those reaching ``S`` are scored),
    up to every movie. The final order is score descending, then movie ID ascending.
    ``excluded``: sorted keys ``position in user_rows * n_movies + movie_pos``.

    Users with a non-finite score or bound, or a score above its bound beyond the
    tolerance, are returned in ``unsure`` (positions in ``user_rows``) for the caller to
    score through the pairs path.

    Returns ``((user_at, rank, movie_pos, rating, score), unsure)``: flat rows ordered by
    user, then rank (1-based); ``movie_pos`` indexes ``arts.movies.ids``; ``score`` is the
    rank score the rows are sorted by.
    """
    n_users, n_movies = user_rows.size, len(arts.movies)
    keys = np.empty(0, dtype=np.int64)
    if excluded is not None and excluded.size:  # movie positions -> embedding rows
        keys = np.sort(excluded // n_movies * n_movies + arts.movies.rows[excluded % n_movies])
    scored: list[tuple[np.ndarray, ...]] = []  # (user, movie row, rating, rank score)
    threshold = np.full(n_users, -np.inf)
    bad = np.zeros(n_users, dtype=bool)
    todo = np.arange(n_users)
    kk = min(k + CATALOG_MARGIN, n_movies)
    while todo.size:
        rows, bounds = graph.top_bounds(user_rows[todo], _renumber(keys, todo, n_movies), kk)
        pick = (bounds >= threshold[todo, None]) & (bounds > -np.inf)
        if scored:  # a later round: only movies not scored yet
            seen = np.sort(np.concatenate([u * n_movies + m for u, m, _, _ in scored]))
            key = todo[:, None] * n_movies + rows
            at = np.minimum(np.searchsorted(seen, key), seen.size - 1)
            pick &= seen[at] != key
        at, col = np.nonzero(pick)
        users, movies = todo[at], rows[at, col]
        ratings, ranks = arts.predict_rows(user_rows[users], movies, batch_size)
        scored.append((users, movies, ratings, ranks))
        bound = bounds[at, col].astype(np.float64)
        over = ~(ranks <= bound + _tolerance(bound))  # NaN counts as over
        bad[users[over]] = True
        bad[todo[np.isnan(bounds).any(axis=1)]] = True
        kth = _kth_best(scored, n_users, k)
        threshold = kth - 2 * _tolerance(kth)
        last = bounds[:, -1].astype(np.float64)
        done = (kk == n_movies) | ~(last > -np.inf) | (last < threshold[todo])
        todo = todo[~done & ~bad[todo]]
        kk = min(CATALOG_GROWTH * kk, n_movies)
    users, movies, ratings, ranks = (np.concatenate(c) for c in zip(*scored, strict=True))
    keep = ~bad[users]
    users, pos, ratings, ranks = (
        users[keep],
        arts.movie_pos_of_row[movies[keep]],
        ratings[keep],
        ranks[keep],
    )
    order = np.lexsort((pos, -ranks.astype(np.float64), users))
    users, pos, ratings, ranks = users[order], pos[order], ratings[order], ranks[order]
    rank = _ranks_within(users)
    top = rank <= k
    found = (users[top], rank[top].astype(np.int32), pos[top], ratings[top], ranks[top])
    return found, np.flatnonzero(bad)


def _kth_best(scored: list[tuple[np.ndarray, ...]], n_users: int, k: int) -> np.ndarray:
    """Per user, the k-th best rank score scored so far (-inf with fewer than k)."""
    users = np.concatenate([s[0] for s in scored])
    ranks = np.concatenate([s[3] for s in scored]).astype(np.float64)
    order = np.lexsort((-ranks, users))
    users, ranks = users[order], ranks[order]
    kth = np.full(n_users, -np.inf)
    at = _ranks_within(users) == k
    kth[users[at]] = ranks[at]
    return kth


def _ranks_within(users: np.ndarray) -> np.ndarray:
    """1-based position of each row within its run of equal (sorted) ``users``."""
    if users.size == 0:
        return np.empty(0, dtype=np.int64)
    return np.arange(users.size) - np.searchsorted(users, users) + 1


def _renumber(keys: np.ndarray, users: np.ndarray, n_movies: int) -> np.ndarray:
    """Keys ``user * n_movies + x`` of the (sorted) positions ``users``, renumbered as
    positions in ``users``."""
    if not keys.size or users.size == 0:
        return keys[:0]
    if users.size == users[-1] + 1:  # the first users, in order: nothing to renumber
        return keys[: np.searchsorted(keys, users.size * n_movies)]
    owner = keys // n_movies
    at = np.minimum(np.searchsorted(users, owner), users.size - 1)
    hit = users[at] == owner
    return at[hit] * n_movies + keys[hit] % n_movies


def _sub_keys(excluded: np.ndarray | None, users: np.ndarray, arts: Artifacts) -> np.ndarray | None:
    """Exclusion keys of the block positions ``users`` (sorted), renumbered from 0."""
    if excluded is None or not excluded.size:
        return excluded
    n_movies = len(arts.movies)
    owner = excluded // n_movies
    at = np.searchsorted(users, owner)
    hit = at < users.size
    hit[hit] = users[at[hit]] == owner[hit]
    return at[hit] * n_movies + excluded[hit] % n_movies


def score_block_by_pairs(
    arts: Artifacts,
    block: Ids,
    excluded: np.ndarray | None,
    k: int,
    batch_size: int,
    titles: TitleLookup | None = None,
    ids: IdSchema | None = None,
) -> pa.Table:
    """:func:`score_user_block` through the pairs graph: every user x movie pair scored by
    :meth:`Artifacts.predict_found` (the path for unknown users and exports without a
    catalog graph)."""
    at, ranks, movie_pos, ratings, scores, cold = _top_k_by_pairs(
        arts, arts.users.lookup(block), excluded, k, batch_size
    )
    return build_topk_table(
        take(block, at), ranks, arts.movies.ids_at(movie_pos), ratings, scores, cold, titles, ids
    )


def _top_k_by_pairs(
    arts: Artifacts,
    found: tuple[np.ndarray, np.ndarray, np.ndarray],
    excluded: np.ndarray | None,
    k: int,
    batch_size: int,
) -> tuple[np.ndarray, ...]:
    """``(user_at, rank, movie_pos, rating, score, cold)`` of :func:`score_block_by_pairs`
    for users already looked up (``found``: their ``(rows, known, pos)``), rows ordered by
    position among them, then rank. Movie ``pos`` is the candidate order (ID ascending)."""
    n_users, n_movies = found[0].size, len(arts.movies)
    movies = (arts.movies.rows, np.ones(n_movies, bool), np.arange(n_movies))
    pred = arts.predict_found(
        tuple(np.repeat(f, n_movies) for f in found),
        tuple(np.tile(f, n_users) for f in movies),
        on_unknown="fallback",
        batch_size=batch_size,
    )
    scores = pred.rank_scores.reshape(n_users, n_movies)
    if excluded is not None and excluded.size:
        if pred.rank_scores is pred.ratings:
            scores = scores.copy()  # the -inf marks must not reach the ratings
        scores.reshape(-1)[excluded] = -np.inf
    cols, valid = select_block_top_k(scores, k)
    ratings = pred.ratings.reshape(n_users, n_movies)
    kk = cols.shape[1]
    rows = np.repeat(np.arange(n_users), kk).reshape(n_users, kk)
    cold = pred.cold_start.reshape(n_users, n_movies)
    return (
        rows[valid],
        np.broadcast_to(np.arange(1, kk + 1, dtype=np.int32), cols.shape)[valid],
        cols[valid],
        ratings[rows[valid], cols[valid]],
        scores[rows[valid], cols[valid]],
        cold[rows[valid], cols[valid]],
    )
