"""Vectorised raw ID -> embedding row lookup (sorted arrays + ``np.searchsorted``).

When the IDs span a compact range (MovieLens IDs do) a dense position table is built
as well and used instead of the binary search: one gather per value, several times
faster on random IDs. Both give the same answer (tested).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from movierec.serve_batch._mapping_json import IdTable

#: Build the dense table when ``max_id - min_id`` is below this many entries
#: (8 bytes each) or 16 x the number of IDs, whichever is larger...
DENSE_MIN_SPAN = 1 << 20
#: ...but never above this many entries (128 MiB).
DENSE_MAX_SPAN = 1 << 24


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class IdMap:
    """Raw IDs sorted ascending with their embedding rows and fallback means.

    Built once per run from the JSON mapping so that mapping a batch costs one
    binary search per value instead of a Python dict lookup per row.
    """

    ids: np.ndarray  # int64, sorted, unique
    rows: np.ndarray  # int64, embedding row of ids[i]
    means: np.ndarray  # float32, fallback mean of ids[i]
    dense: np.ndarray | None = None  # pos of id (min_id + i), -1 if absent; last entry -1

    def __len__(self) -> int:
        return int(self.ids.size)

    def lookup(self, raw_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(rows, known, pos)``; ``rows``/``pos`` are 0 where ``known`` is False.

        ``pos`` indexes ``ids``/``means`` (sorted order), ``rows`` the embedding.
        """
        if self.dense is not None:
            return self._lookup_dense(raw_ids)
        return self.lookup_sorted(raw_ids)

    def lookup_sorted(self, raw_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`lookup` by binary search over the sorted IDs (works for any IDs)."""
        pos = np.searchsorted(self.ids, raw_ids)
        np.minimum(pos, self.ids.size - 1, out=pos)
        known = self.ids[pos] == raw_ids
        pos[~known] = 0
        return self.rows[pos], known, pos

    def _lookup_dense(self, raw_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        span = self.dense.size - 1  # the last entry is the "absent" sentinel
        off = np.subtract(raw_ids, self.ids[0], dtype=np.int64)
        # as uint64, IDs below min_id wrap to huge values, so one minimum() clips both ends
        np.minimum(off.view(np.uint64), np.uint64(span), out=off.view(np.uint64))
        pos = self.dense[off]
        known = pos >= 0
        if not known.all():
            pos[~known] = 0
        return self.rows[pos], known, pos


def build_idmap(index: Mapping, means: Mapping, default_mean: float) -> IdMap:
    """Sort a ``{"raw id": row}`` mapping into arrays; IDs without a mean get ``default_mean``.

    Takes dicts or the :class:`IdTable` arrays that ``loads_mapping`` reads. Raises
    ``ValueError`` (the caller names the file) for keys or rows that are not integers.
    """
    if isinstance(index, IdTable):
        ids, rows = index.ids.copy(), index.values.astype(np.int64)
    else:
        ids = np.fromiter((int(k) for k in index), dtype=np.int64, count=len(index))
        rows = np.fromiter((int(v) for v in index.values()), dtype=np.int64, count=len(index))
    order = np.argsort(ids, kind="stable")
    ids, rows = ids[order], rows[order]
    if ids.size and np.any(ids[1:] == ids[:-1]):
        dup = ids[1:][ids[1:] == ids[:-1]][0]
        raise ValueError(f"ID {dup} appears twice")
    if rows.size and rows.min() < 0:
        raise ValueError(f"negative embedding row {rows.min()}")
    ordered = np.sort(rows)  # np.unique's hash took 5x longer on 162k rows
    if ordered.size and np.any(ordered[1:] == ordered[:-1]):
        raise ValueError("two IDs share one embedding row")
    mean_of = np.full(ids.size, default_mean, dtype=np.float64)
    if isinstance(means, IdTable):
        mean_ids, mean_vals = means.ids, means.values.astype(np.float64)
    elif means:
        mean_ids = np.fromiter((int(k) for k in means), dtype=np.int64, count=len(means))
        mean_vals = np.fromiter((float(v) for v in means.values()), np.float64, len(means))
    if len(means):
        pos = np.searchsorted(ids, mean_ids)
        np.minimum(pos, max(ids.size - 1, 0), out=pos)
        hit = ids[pos] == mean_ids if ids.size else np.zeros(mean_ids.size, bool)
        mean_of[pos[hit]] = mean_vals[hit]
    return IdMap(ids=ids, rows=rows, means=mean_of.astype(np.float32), dense=_build_dense(ids))


def _build_dense(ids: np.ndarray) -> np.ndarray | None:
    if ids.size == 0:
        return None
    span = int(ids[-1]) - int(ids[0]) + 1
    if span > min(max(16 * ids.size, DENSE_MIN_SPAN), DENSE_MAX_SPAN):
        return None
    table = np.full(span + 1, -1, dtype=np.int64)
    table[ids - ids[0]] = np.arange(ids.size)
    return table
