"""What a pairs run counts as it goes: unknown IDs and RMSE/MAE, per block and merged.

Each block of a run fills its own tally; the driver merges them in input order (the
engines score blocks wherever they like), so the merged counts and the "first IDs" of an
error message are those of one pass over the whole input.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow.compute as pc

from movierec.serve_batch._idvalues import Ids, concat, is_text, keep, show
from movierec.serve_batch._sorting import sorted_unique

#: How many offending IDs an error message shows.
SHOW_IDS = 5


class DistinctIds:
    """Distinct-ID count and the first few IDs in order of appearance, streaming.

    Integer IDs (numpy) are kept sorted and distinct; string IDs (Arrow) distinct by
    Arrow's hash kernel. ``first`` holds Python ints or strs (for messages and manifests).
    """

    def __init__(self, show: int = SHOW_IDS) -> None:
        self.show = show
        self.first: list = []
        self._merged: Ids | None = None
        self._pending: list[Ids] = []
        self._pending_n = 0

    def add(self, ids: Ids) -> None:
        if len(ids) == 0:
            return
        if is_text(ids):
            uniq = pc.unique(ids)  # in order of first appearance
            if len(self.first) < self.show:
                self._note_first(uniq[: self.show].to_pylist())
            self._add_unique(uniq)
            return
        uniq, first_at = np.unique(ids, return_index=True)
        if len(self.first) < self.show:
            self._note_first(int(v) for v in ids[np.sort(first_at)])
        self._add_unique(uniq)

    def merge(self, later: DistinctIds) -> None:
        """Add the IDs of ``later``, a tally of the input that follows this one's.

        Exact for the first IDs too: while fewer than ``show`` are known, every ID seen
        so far is among them, so ``later``'s first ``show`` hold the new ones needed."""
        self._note_first(later.first)
        later._merge()
        if later._merged is not None:
            self._add_unique(later._merged)

    def _note_first(self, ids) -> None:
        for v in ids:
            if len(self.first) >= self.show:
                break
            if v not in self.first:
                self.first.append(v)

    def _add_unique(self, uniq: Ids) -> None:
        if not len(uniq):
            return
        self._pending.append(uniq)
        self._pending_n += len(uniq)
        held = 0 if self._merged is None else len(self._merged)
        if self._pending_n > max(held, 1 << 16):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        parts = ([self._merged] if self._merged is not None else []) + self._pending
        if is_text(parts[0]):
            self._merged = pc.unique(concat(parts))
        else:
            self._merged = sorted_unique(np.concatenate(parts))
        self._pending, self._pending_n = [], 0

    def count(self) -> int:
        self._merge()
        return 0 if self._merged is None else len(self._merged)


class UnknownTally:
    """Counts of rows and distinct IDs missing from the mapping."""

    def __init__(self) -> None:
        self.rows_user = 0
        self.rows_movie = 0
        self.rows_any = 0
        self.first_row: int | None = None
        self.users = DistinctIds()
        self.movies = DistinctIds()

    def add(
        self,
        users: Ids,
        movies: Ids,
        unknown_user: np.ndarray,
        unknown_movie: np.ndarray,
        row_offset: int,
    ) -> None:
        """Count one stretch of rows; ``row_offset`` is the input row of its first."""
        any_unknown = unknown_user | unknown_movie
        n_any = int(any_unknown.sum())
        if not n_any:
            return
        if self.first_row is None:
            self.first_row = row_offset + int(np.argmax(any_unknown))
        self.rows_any += n_any
        self.rows_user += int(unknown_user.sum())
        self.rows_movie += int(unknown_movie.sum())
        if unknown_user.any():
            self.users.add(keep(users, unknown_user))
        if unknown_movie.any():
            self.movies.add(keep(movies, unknown_movie))

    def merge(self, later: UnknownTally) -> None:
        """Add ``later``, the tally of the input that follows this one's."""
        if self.first_row is None:
            self.first_row = later.first_row
        self.rows_any += later.rows_any
        self.rows_user += later.rows_user
        self.rows_movie += later.rows_movie
        self.users.merge(later.users)
        self.movies.merge(later.movies)

    def to_dict(self, policy: str) -> dict[str, Any]:
        return {
            "policy": policy,
            "action": {
                "fallback": "scored with fallback means, cold_start=True",
                "skip": "dropped",
            }.get(policy, "error"),
            "rows_with_unknown_id": self.rows_any,
            "rows_with_unknown_user": self.rows_user,
            "rows_with_unknown_movie": self.rows_movie,
            "distinct_unknown_users": self.users.count(),
            "distinct_unknown_movies": self.movies.count(),
            "first_unknown_users": self.users.first,
            "first_unknown_movies": self.movies.first,
            "rows_cold_start": self.rows_any if policy == "fallback" else 0,
            "rows_skipped": self.rows_any if policy == "skip" else 0,
        }

    def describe(self, rows_read: int) -> str:
        """The ``on_unknown="error"`` message (names the ``on_unknown`` parameter)."""
        parts = []
        for kind, rows, ids in (
            ("user", self.rows_user, self.users),
            ("movie", self.rows_movie, self.movies),
        ):
            if rows:
                shown = ", ".join(map(show, ids.first))
                more = ", ..." if ids.count() > len(ids.first) else ""
                parts.append(
                    f"{rows} rows with an unknown {kind} ID ({ids.count()} distinct: {shown}{more})"
                )
        return (
            f"{self.rows_any} of {rows_read} rows have IDs missing from the ID mapping: "
            f"{'; '.join(parts)}; first at row {self.first_row} (0-based data row). "
            "Use {on_unknown} fallback or {on_unknown} skip to score or drop them"
        )


class ErrorMetrics:
    """Streaming RMSE/MAE of predictions against a ``rating`` column (nulls ignored)."""

    def __init__(self) -> None:
        self.count = 0
        self._sq = 0.0
        self._abs = 0.0

    def add(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        ok = np.isfinite(truth)
        if not ok.all():
            truth, predicted = truth[ok], predicted[ok]
        diff = np.abs(predicted.astype(np.float64) - truth)
        self.count += int(diff.size)
        self._abs += float(diff.sum())
        # not np.dot: BLAS would wake its thread pool for every batch
        self._sq += float(np.square(diff, out=diff).sum())

    def merge(self, later: ErrorMetrics) -> None:
        """Add another block's sums (in input order: float sums in the local order)."""
        self.count += later.count
        self._sq += later._sq
        self._abs += later._abs

    def to_dict(self) -> dict[str, Any]:
        if not self.count:
            return {"rows": 0, "rmse": None, "mae": None}
        return {
            "rows": self.count,
            "rmse": math.sqrt(self._sq / self.count),
            "mae": self._abs / self.count,
        }
