"""``Vocabulary``: raw user and movie IDs <-> dense embedding rows, integer or string IDs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from movierec.serve_batch import contract


def id_type(ids: np.ndarray) -> str:
    """``"string"`` for an object array of str, ``"int"`` for integers."""
    return contract.ID_TYPE_STRING if ids.dtype == object else contract.ID_TYPE_INT


def ids_to_arrow(ids: np.ndarray) -> pa.Array:
    """Raw IDs as an Arrow column: int64, or string for string IDs."""
    if ids.dtype == object:
        return pa.array(ids, type=pa.string())
    return pa.array(np.asarray(ids, dtype=np.int64), type=pa.int64())


@dataclass(frozen=True, eq=False)  # holds arrays
class Vocabulary:
    """Raw IDs -> dense rows: ``user_ids[i]`` is the raw ID of row ``i`` (sorted ascending).

    Integer IDs are int64 arrays; string IDs are object arrays of ``str``, sorted by their
    code points (the order Arrow sorts strings in).
    """

    user_ids: np.ndarray
    movie_ids: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_movies(self) -> int:
        return len(self.movie_ids)

    @property
    def id_types(self) -> dict[str, str]:
        """``{"user": "int" | "string", "movie": ...}`` as ``id_mapping.json`` records it."""
        return {"user": id_type(self.user_ids), "movie": id_type(self.movie_ids)}

    def raw_users(self, rows: np.ndarray) -> pa.Array:
        """The raw IDs of user rows ``rows``, as an Arrow column (no Python object per row)."""
        return _take(self.user_ids, rows)

    def raw_movies(self, rows: np.ndarray) -> pa.Array:
        """The raw IDs of movie rows ``rows``, as an Arrow column."""
        return _take(self.movie_ids, rows)


def _take(ids: np.ndarray, rows: np.ndarray) -> pa.Array:
    rows = np.asarray(rows, dtype=np.int64)
    if ids.dtype != object:
        return pa.array(np.asarray(ids, dtype=np.int64)[rows], type=pa.int64())
    return ids_to_arrow(ids).take(pa.array(rows, type=pa.int64()))
