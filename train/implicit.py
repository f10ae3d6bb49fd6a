"""The neighbour lists behind the SVD++-style implicit terms, as compact CSR arrays.

A user's implicit term sums vectors of the movies they rated in training; a movie's, of
its raters. Very active users and very popular movies would make each such sum cost
thousands of rows, so each list keeps at most ``cap`` neighbours: where a row has more,
a seeded random sample of them (the same sample on every run with the same seed, and the
same lists at training, evaluation and export, since the model holds them as buffers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Neighbours:
    """Row ``r``'s neighbours are ``indices[indptr[r]:indptr[r + 1]]``, ascending."""

    indptr: np.ndarray  # int64 [n_rows + 1]
    indices: np.ndarray  # int64 [nnz]
    counts: np.ndarray  # int64 [n_rows]: neighbours before the cap

    @property
    def scale(self) -> np.ndarray:
        """float32 [n_rows]: each list's weight in its row's implicit sum.

        ``1/sqrt(count)`` makes the sum over all ``count`` neighbours SVD++'s normalised
        sum; a capped list keeps ``k`` of them, so weighting each by ``sqrt(count) / k``
        gives the same sum in expectation (``count/k`` times the sample's sum, over
        ``sqrt(count)``): a popular movie's term keeps growing with its raters instead of
        flattening at the cap (measured on ml-100k: NDCG@10 0.259 with a cap of 64 raters
        without this weighting)."""
        kept = np.maximum(self.lengths, 1).astype(np.float64)
        return (np.sqrt(np.maximum(self.counts, 1)) / kept).astype(np.float32)

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


def neighbour_lists(
    rows: np.ndarray, cols: np.ndarray, n_rows: int, cap: int = 0, seed: int = 0
) -> Neighbours:
    """The distinct ``cols`` of each row (a pair given twice counts once), at most ``cap``
    per row (0: no cap), chosen uniformly at random with ``seed`` where a row has more.

    Linear in the pairs after one sort: no per-row Python loop.
    """
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    width = int(cols.max()) + 1 if cols.size else 1
    keys = np.sort(rows * width + cols)  # by row, then column (np.unique's hash: 5x slower)
    if keys.size:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]  # duplicates gone
    full = np.bincount(keys // width, minlength=n_rows)
    if cap and keys.size:
        # a random priority per pair; keep the ``cap`` lowest of each row
        priority = np.random.default_rng(seed).random(keys.size)
        order = np.lexsort((priority, keys // width))
        row_of = keys[order] // width
        first = np.searchsorted(row_of, row_of, side="left")
        keep = order[np.arange(order.size) - first < cap]
        keys = keys[np.sort(keep)]
    counts = np.bincount(keys // width, minlength=n_rows)
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Neighbours(indptr, keys % width, full)
