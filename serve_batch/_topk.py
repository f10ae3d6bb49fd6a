"""Per-user top-k, vectorised, with a deterministic order.

Order within a user: pairs the model scored first, then cold-start pairs (the model
knows nothing of them); within each, higher rank score first (the graph's
``rank_score``, else the rating; a cold-start pair's fallback rating), ties broken by
movie ID ascending. A (user, movie) pair given more than once counts once. The
streaming accumulator keeps at most ``users x K`` rows plus a bounded buffer.

The order of IDs is that of the side's ``sort_codes`` (``movierec.serve_batch._idmap``):
integer IDs ascending; string IDs the model knows by code point, then unknown ones by
code point. The selection works on those int64 codes; the IDs themselves (numpy or
Arrow, ``movierec.serve_batch._idvalues``) ride along.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movierec.serve_batch import contract
from movierec.serve_batch._arrow import from_numpy, strings_from_list, to_numpy
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch._idvalues import Ids, concat, take, to_arrow
from movierec.serve_batch._string_index import StringIndex

_TITLE_FIELD = pa.field(contract.TITLE_COL, pa.string(), nullable=True)


def topk_schema(ids: IdSchema | None = None, titles: bool = False) -> pa.Schema:
    """The top-k table's schema: the ID columns under ``ids``' names and types, and the
    ``title`` column last when ``titles``."""
    ids = ids or IdSchema()
    schema = pa.schema(
        [
            ids.field("user", nullable=False),
            pa.field(contract.RANK_COL, pa.int32(), nullable=False),
            ids.field("movie", nullable=False),
            pa.field(contract.PREDICTION_COL, pa.float32(), nullable=False),
            pa.field(contract.SCORE_COL, pa.float32(), nullable=False),
            pa.field(contract.COLD_START_COL, pa.bool_(), nullable=False),
        ]
    )
    return schema.append(_TITLE_FIELD) if titles else schema


#: The top-k schema of an integer model under the default column names.
TOPK_SCHEMA = topk_schema()


class TitleLookup:
    """Movie ID -> title, from the ID mapping's ``titles`` (movies without one get null).

    ``titles`` is keyed by integer IDs, or by string IDs for ``id_type`` "string"."""

    def __init__(self, titles: dict, id_type: str = contract.ID_TYPE_INT) -> None:
        names = strings_from_list([str(v) for v in titles.values()])
        self._index: StringIndex | None = None
        if id_type == contract.ID_TYPE_STRING:
            keys = strings_from_list([str(k) for k in titles])
            order = to_numpy(pc.sort_indices(keys)).astype(np.int64)
            self._ids: Ids = take(keys, order)
            self._index = StringIndex(self._ids)
        else:
            ids = np.fromiter(titles.keys(), dtype=np.int64, count=len(titles))
            order = np.argsort(ids)
            self._ids = ids[order]
        self._titles = names.take(from_numpy(order, np.int64))

    def __len__(self) -> int:
        return len(self._ids)

    def lookup(self, movie_ids: Ids) -> pa.Array:
        """Titles of ``movie_ids`` in order; null where the mapping has none."""
        if self._index is not None:
            if not len(self._ids):
                return pa.nulls(len(movie_ids), pa.string())
            at, found = self._index.positions(movie_ids)
            return self._titles.take(_valid_where(at, found))
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        if not self._ids.size:
            return pa.nulls(movie_ids.size, pa.string())
        at = np.minimum(np.searchsorted(self._ids, movie_ids), self._ids.size - 1)
        found = self._ids[at] == movie_ids
        return self._titles.take(_valid_where(at, found))


def _valid_where(at: np.ndarray, found: np.ndarray) -> pa.Array:
    """Indices with a validity bitmap (null where not ``found``): ``take()`` gives null
    there. Built from buffers, so pyarrow never probes for pandas."""
    at = np.ascontiguousarray(at, dtype=np.int64)
    valid = pa.py_buffer(np.packbits(found, bitorder="little"))
    return pa.Array.from_buffers(pa.int64(), at.size, [valid, pa.py_buffer(at)])


def select_top_k(
    users: np.ndarray,
    movies: np.ndarray,
    scores: np.ndarray,
    k: int,
    cold: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of each user's ``k`` best distinct movies and their 0-based ranks.

    ``scores`` are rank scores (higher is better); ``cold`` rows rank after the others.
    Returned in table order: user ascending, then rank. Repeats of a (user, movie)
    pair carry the same score, so they sort next to each other and all but one drop.
    """
    if users.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    order = order_for_top_k(users, movies, scores, cold)
    u, m = users[order], movies[order]
    new_user = np.empty(u.size, dtype=bool)
    new_user[0] = True
    np.not_equal(u[1:], u[:-1], out=new_user[1:])
    keep = new_user.copy()
    keep[1:] |= m[1:] != m[:-1]  # drop a repeat of the row before
    if not keep.all():
        order, new_user = order[keep], new_user[keep]
    starts = np.flatnonzero(new_user)
    rank = np.arange(order.size) - np.repeat(starts, np.diff(np.append(starts, order.size)))
    top = rank < k
    return order[top], rank[top]


def order_for_top_k(
    users: np.ndarray,
    movies: np.ndarray,
    scores: np.ndarray,
    cold: np.ndarray | None = None,
) -> np.ndarray:
    """``argsort`` by user ascending, cold last, score descending, movie ascending.

    Packs the keys into one uint64 when they fit (user and movie offsets, the cold bit
    and the 32 bits of an order-preserving transform of the float32 score), which sorts
    several times faster than ``np.lexsort``; falls back to lexsort.
    """
    if cold is None:
        cold = np.zeros(users.size, dtype=bool)
    u_off, u_bits = _offsets(users)
    m_off, m_bits = _offsets(movies)
    if u_bits + 33 + m_bits > 64:
        u_off, u_bits = _dense_ranks(users)
        m_off, m_bits = _dense_ranks(movies)
    if u_bits + 33 + m_bits > 64:
        return np.lexsort((movies, -scores.astype(np.float32), cold, users))
    key = u_off << np.uint64(33 + m_bits)
    key |= cold.astype(np.uint64) << np.uint64(32 + m_bits)
    key |= _descending_bits(scores).astype(np.uint64) << np.uint64(m_bits)
    key |= m_off
    return np.argsort(key)  # equal keys are identical rows, so stability is moot


def _offsets(ids: np.ndarray) -> tuple[np.ndarray, int]:
    lo, hi = int(ids.min()), int(ids.max())
    return (ids - lo).astype(np.uint64), max(hi - lo, 1).bit_length()


def _dense_ranks(ids: np.ndarray) -> tuple[np.ndarray, int]:
    uniq, inverse = np.unique(ids, return_inverse=True)
    return inverse.astype(np.uint64).reshape(-1), max(uniq.size - 1, 1).bit_length()


def _descending_bits(scores: np.ndarray) -> np.ndarray:
    """uint32 whose ascending order is the scores' descending order (-0.0 == 0.0)."""
    bits = (scores.astype(np.float32) + np.float32(0.0)).view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    ascending = np.where(negative, ~bits, bits | np.uint32(0x80000000))
    return ~ascending


class TopKAccumulator:
    """Merge per-batch candidates into each user's running top-k.

    Each batch is reduced to its own top-k at once; the reduced rows wait in a buffer
    that is merged with the running state when it outgrows it, so the total sorting
    work stays O(n log n) and memory stays O(users x K + buffer).

    ``maps``: the model's user and movie ID maps, whose ``sort_codes`` order the IDs
    (needed for string IDs; None: integer IDs, ordered by value). ``ids``: the table's
    ID columns.
    """

    def __init__(
        self,
        k: int,
        min_merge_rows: int = 1 << 18,
        titles: TitleLookup | None = None,
        *,
        maps: Sequence | None = None,
        ids: IdSchema | None = None,
    ) -> None:
        self.k = k
        self.titles = titles
        self.maps = maps
        self.ids = ids or IdSchema()
        self._min_merge_rows = min_merge_rows
        self._state: tuple | None = None
        self._pending: list[tuple] = []
        self._pending_rows = 0

    def _codes(self, side: int, ids: Ids) -> np.ndarray:
        idmap = None if self.maps is None else self.maps[side]
        if idmap is None or idmap.id_type == contract.ID_TYPE_INT:
            return ids  # integer IDs are their own codes
        _, known, pos = idmap.lookup(ids)
        return idmap.sort_codes(ids, known, pos)

    def _select(self, rows: tuple) -> tuple[np.ndarray, np.ndarray]:
        u, m, _, s, c = rows
        return select_top_k(self._codes(0, u), self._codes(1, m), s, self.k, c)

    def add(
        self,
        users: Ids,
        movies: Ids,
        ratings: np.ndarray,
        rank_scores: np.ndarray,
        cold: np.ndarray,
    ) -> None:
        rows = (users, movies, ratings, rank_scores, cold)
        idx, _ = self._select(rows)
        self.add_selected(*(take(a, idx) for a in rows))

    def add_selected(
        self,
        users: Ids,
        movies: Ids,
        ratings: np.ndarray,
        rank_scores: np.ndarray,
        cold: np.ndarray,
    ) -> None:
        """Add rows already reduced to their own top-k (a block's candidates)."""
        if len(users) == 0:
            return
        self._pending.append((users, movies, ratings, rank_scores, cold))
        self._pending_rows += len(users)
        held = 0 if self._state is None else len(self._state[0])
        if self._pending_rows >= max(self._min_merge_rows, held):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        parts = ([self._state] if self._state is not None else []) + self._pending
        rows = tuple(concat([p[i] for p in parts]) for i in range(5))
        idx, _ = self._select(rows)
        self._state = tuple(take(a, idx) for a in rows)
        self._pending, self._pending_rows = [], 0

    def to_table(self) -> pa.Table:
        """The final table: user ascending, rank 1..K."""
        self._merge()
        if self._state is None:
            return topk_schema(self.ids, self.titles is not None).empty_table()
        idx, rank = self._select(self._state)
        u, m, r, s, c = (take(a, idx) for a in self._state)
        return build_topk_table(u, rank + 1, m, r, s, c, self.titles, self.ids)


def select_block_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a ``users x movies`` rank-score block whose columns are movie
    IDs ascending; ``-inf`` marks excluded pairs. Returns ``(cols, valid)``, both
    ``users x k``. (A row is all cold-start or none, so the cold-last rule is moot.)

    A stable sort keeps equal scores in column (movie ID) order.
    """
    k = min(k, scores.shape[1])
    cols = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    valid = np.isfinite(np.take_along_axis(scores, cols, axis=1))
    return cols, valid


def build_topk_table(
    users: Ids,
    ranks: np.ndarray,
    movies: Ids,
    ratings: np.ndarray,
    scores: np.ndarray,
    cold: np.ndarray,
    titles: TitleLookup | None = None,
    ids: IdSchema | None = None,
) -> pa.Table:
    """The one builder of top-k tables (both modes, both engines): ``scores`` are what the
    rows were ranked by; ``titles`` adds the ``title`` column; ``ids`` names and types
    the ID columns (integer IDs under user_id / movie_id by default)."""
    columns = [
        to_arrow(users),
        from_numpy(ranks, np.int32),
        to_arrow(movies),
        from_numpy(ratings, np.float32),
        from_numpy(scores, np.float32),
        from_numpy(cold, np.bool_),
    ]
    if titles is not None:
        columns.append(titles.lookup(movies))
    return pa.Table.from_arrays(columns, schema=topk_schema(ids, titles is not None))
