"""Distinct integers by sorting.

numpy 2.4's ``np.unique`` without ``return_inverse``/``return_index`` hashes, and on this
machine it took 5.5 s for 5 million random int64 values where a sort took 0.08 s (25 ms
against 0.8 ms for 65,536): every distinct-ID count of the scorer goes through here.
"""

from __future__ import annotations

import numpy as np


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` (ascending distinct values) by one sort."""
    values = np.sort(values)
    if values.size < 2:
        return values
    keep = np.empty(values.size, dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]
