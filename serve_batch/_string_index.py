"""Exact lookup of string IDs in a fixed set, at a cost per call that does not grow with
the set.

``pyarrow.compute.index_in`` hashes its whole value set on every call: a pairs run pays
that once per block, so its cost grows with users x blocks. From :data:`TABLE_FROM` IDs
on, the set is hashed once into an open-addressing table of 64-bit hashes (numpy); a
call then hashes only its own strings (:class:`StringHasher`: O(bytes)), probes the
table and checks every candidate by string equality, so a hash collision can never
match the wrong ID. ``python bench/string_ids.py`` prints both side by side (65,536 IDs
looked up, one core): against 32,508 IDs ``index_in`` took 1.55 ms and the table 1.9;
against 162,541, 4.6 against 2.2; against 1,000,000, 63-129 ms against 4.3-6.5.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movierec.serve_batch._arrow import from_numpy, indices_with_nulls, to_numpy

#: Sets of at least this many IDs get a hash table; smaller ones use ``index_in`` (both
#: took 1.8-1.9 ms per 65,536 IDs against 50,000, measured alongside the figures above).
TABLE_FROM = 1 << 16
#: Bytes hashed per prefix-sum pass (the multiplier's powers are precomputed this far).
WINDOW = 1 << 18

_M = 0x9E3779B97F4A7C15  # odd, so it has an inverse modulo 2**64
_M_INV = pow(_M, -1, 1 << 64)
_LENGTH = np.uint64(0xC2B2AE3D27D4EB4F)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


class StringIndex:
    """Positions of strings in ``ids`` (distinct strings, in any order)."""

    def __init__(self, ids: pa.Array, table_from: int = TABLE_FROM) -> None:
        self.ids = _plain(ids)
        self._slot_pos: np.ndarray | None = None
        self._hash = StringHasher()
        if len(self.ids) >= table_from:
            self._build_table(self._hash(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def hashed(self) -> bool:
        """Whether lookups go through the hash table (else ``index_in``)."""
        return self._slot_pos is not None

    def positions(self, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """``(pos, known)`` of each of ``values``: its index in ``ids`` (0 where unknown)
        and whether it is there, matched exactly."""
        values = _plain(values)
        if self._slot_pos is None:
            return indices_with_nulls(pc.index_in(values, value_set=self.ids))
        h = self._hash(values)
        slot = (h >> self._shift).astype(np.intp)
        pos = self._slot_pos[slot]
        hit = self._slot_hash[slot] == h
        todo = np.flatnonzero(~hit & (pos >= 0))  # occupied by another hash: probe on
        pos = np.where(hit, pos, -1)
        while todo.size:
            slot[todo] = (slot[todo] + 1) & self._mask
            at = self._slot_pos[slot[todo]]
            found = self._slot_hash[slot[todo]] == h[todo]
            pos[todo[found]] = at[found]
            todo = todo[~found & (at >= 0)]
        known = pos >= 0
        pos[~known] = 0
        if len(values):  # a 64-bit hash is not the string: check each candidate
            known &= to_numpy(pc.equal(values, self.ids.take(from_numpy(pos))))
            pos[~known] = 0
        return pos, known

    def _build_table(self, h: np.ndarray) -> None:
        """Linear probing at a load of at most 1/2; two equal hashes (a 64-bit collision
        among the IDs) keep ``index_in`` instead."""
        if np.any(np.diff(np.sort(h)) == 0):
            return
        n = h.size
        bits = max(4, int(n - 1).bit_length() + 1)
        self._shift, self._mask = np.uint64(64 - bits), (1 << bits) - 1
        slot_pos = np.full(1 << bits, -1, dtype=np.int64)
        slot_hash = np.zeros(1 << bits, dtype=np.uint64)
        slot = (h >> self._shift).astype(np.intp)
        todo = np.arange(n)
        while todo.size:  # each round places the first claimant of every free slot
            free = slot_pos[slot[todo]] < 0
            claim = todo[free]
            _, first = np.unique(slot[claim], return_index=True)
            placed = claim[first]
            slot_pos[slot[placed]] = placed
            slot_hash[slot[placed]] = h[placed]
            left = np.ones(todo.size, dtype=bool)
            left[np.flatnonzero(free)[first]] = False
            todo = todo[left]
            slot[todo] = (slot[todo] + 1) & self._mask
        self._slot_pos, self._slot_hash = slot_pos, slot_hash


def hash_strings(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string (uint64), see :class:`StringHasher`."""
    return StringHasher()(values)


class StringHasher:
    """``sum(byte[t] * M**t)`` modulo 2**64 of each string, mixed with its length, for
    many strings at once from prefix sums of their bytes (O(bytes), at most
    :data:`WINDOW` bytes at a time).

    The per-byte arrays are kept from call to call: allocated afresh, their pages were
    faulted in again on every call, several times the arithmetic (1.4-1.7 ms against
    0.2-0.3 ms for 30,000 strings with glibc's default malloc settings)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._weighted = np.empty(0, dtype=np.uint64)
        self._sums = np.zeros(1, dtype=np.uint64)

    def __call__(self, values: pa.Array) -> np.ndarray:
        values = _plain(values)
        n = len(values)
        out = np.empty(n, dtype=np.uint64)
        if n == 0:
            return out
        width = np.dtype(np.int64 if pa.types.is_large_string(values.type) else np.int32)
        offsets = np.frombuffer(
            values.buffers()[1], width, n + 1, values.offset * width.itemsize
        ).astype(np.int64)
        buffer = values.buffers()[2]
        data = np.frombuffer(buffer, np.uint8) if buffer is not None else np.zeros(0, np.uint8)
        with self._lock:
            first = 0
            while first < n:  # rows whose bytes fit one window, at least one row
                last = int(np.searchsorted(offsets, offsets[first] + WINDOW, side="right")) - 1
                last = min(max(last, first + 1), n)
                out[first:last] = self._hash_rows(data, offsets[first : last + 1])
                first = last
        out ^= np.diff(offsets).astype(np.uint64) * _LENGTH
        out ^= out >> np.uint64(30)
        out *= _MIX1
        out ^= out >> np.uint64(27)
        out *= _MIX2
        out ^= out >> np.uint64(31)
        return out

    def _hash_rows(self, data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``sum(byte[t] * M**t)`` of the strings ``data[offsets[i]:offsets[i + 1]]``."""
        start, end = int(offsets[0]), int(offsets[-1])
        powers, inverse = _powers()
        if end - start > WINDOW:  # one string longer than a window: in pieces
            total, scale = np.zeros(1, np.uint64), np.ones(1, np.uint64)  # arrays wrap
            for a in range(start, end, WINDOW):
                piece = data[a : min(a + WINDOW, end)].astype(np.uint64)
                total += np.sum(piece * powers[: piece.size], dtype=np.uint64) * scale
                scale *= powers[WINDOW]
            return total
        size = end - start
        if self._weighted.size < size:
            grow = min(max(size, 2 * self._weighted.size), WINDOW)
            self._weighted = np.empty(grow, dtype=np.uint64)
            self._sums = np.zeros(grow + 1, dtype=np.uint64)
        weighted, sums = self._weighted[:size], self._sums[: size + 1]
        np.multiply(data[start:end], powers[:size], out=weighted)
        np.cumsum(weighted, out=sums[1:])
        rel = offsets - start
        return (sums[rel[1:]] - sums[rel[:-1]]) * inverse[rel[:-1]]


@functools.cache
def _powers() -> tuple[np.ndarray, np.ndarray]:
    """``M**k`` and ``M**-k`` modulo 2**64 for k = 0..WINDOW (4 MiB, made once)."""
    m = np.full(WINDOW + 1, _M, dtype=np.uint64)
    m_inv = np.full(WINDOW + 1, _M_INV, dtype=np.uint64)
    m[0] = m_inv[0] = 1
    return np.cumprod(m, dtype=np.uint64), np.cumprod(m_inv, dtype=np.uint64)


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A string or large_string array (chunks combined, a dictionary decoded)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    return values
