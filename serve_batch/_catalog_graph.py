"""``catalog.onnx``: each user's best movies out of the whole catalog in one graph call.

The graph takes embedding rows of a block of users, an exclusion mask over every movie row
and K, and returns the K best movie rows per user with their ratings and rank scores
(``TopK`` inside). It belongs to one export: its metadata records the SHA-256 of the ID
mapping and of the ``model.onnx`` written with it, and both are checked when it is opened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from movierec.serve_batch import contract
from movierec.serve_batch._session import create_session
from movierec.serve_batch.errors import ArtifactError

#: Expected ``(type, rank)`` of every input and output of catalog.onnx.
_IO = {
    contract.INPUT_USER: ("tensor(int64)", 1),
    contract.INPUT_EXCLUDE: ("tensor(bool)", 2),
    contract.INPUT_K: ("tensor(int64)", 0),
    contract.OUTPUT_TOP_MOVIE: ("tensor(int64)", 2),
    contract.OUTPUT_TOP_RATING: ("tensor(float)", 2),
    contract.OUTPUT_TOP_RANK: ("tensor(float)", 2),
}
_OUTPUTS = [contract.OUTPUT_TOP_MOVIE, contract.OUTPUT_TOP_RATING, contract.OUTPUT_TOP_RANK]
#: Users x movies scored per call: bounds the graph's ``[users, movies, hidden]`` buffers.
PAIRS_PER_CALL = 1 << 13


class CatalogGraph:
    """An opened, verified ``catalog.onnx``; create with :func:`open_catalog`."""

    def __init__(self, session, path: Path, n_movies: int) -> None:
        self._session = session
        self.path = path
        self.n_movies = n_movies

    def __repr__(self) -> str:
        return f"CatalogGraph({str(self.path)!r}, movies={self.n_movies})"

    def top_k(
        self, user_rows: np.ndarray, exclude: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(movie_rows, ratings, rank_scores)``, each ``[users, k]``, best first.

        ``exclude`` is a bool ``[users, n_movies]`` mask over movie embedding rows;
        excluded pairs come last with a rank score of ``-inf``. ``1 <= k <= n_movies``.
        """
        n = user_rows.size
        rows = np.empty((n, k), dtype=np.int64)
        ratings = np.empty((n, k), dtype=np.float32)
        scores = np.empty((n, k), dtype=np.float32)
        step = max(1, PAIRS_PER_CALL // self.n_movies)
        kk = np.array(k, dtype=np.int64)
        for a in range(0, n, step):
            b = min(a + step, n)
            got = self._session.run(
                _OUTPUTS,
                {
                    contract.INPUT_USER: user_rows[a:b],
                    contract.INPUT_EXCLUDE: exclude[a:b],
                    contract.INPUT_K: kk,
                },
            )
            for value in got:
                if value.shape != (b - a, k):
                    raise ArtifactError(
                        f"{self.path}: an output has shape {list(value.shape)} for {b - a} "
                        f"users and k={k}, expected [{b - a}, {k}]"
                    )
            rows[a:b], ratings[a:b], scores[a:b] = got
        return rows, ratings, scores


def open_catalog(
    path: Path,
    *,
    threads: int | None,
    graph_opt: str,
    n_movies: int,
    mapping_sha256: str,
    model_sha256: str,
) -> CatalogGraph:
    """Open ``path`` and check its I/O, its movie count and that it belongs to the loaded
    model and mapping (``ArtifactError`` naming the fix otherwise)."""
    session = create_session(path, threads, graph_opt)
    found = {v.name: v for v in list(session.get_inputs()) + list(session.get_outputs())}
    if set(found) != set(_IO):
        raise ArtifactError(
            f"{path}: expected inputs and outputs {sorted(_IO)}, found {sorted(found)}; "
            "re-export with rec-export"
        )
    for name, (kind, rank) in _IO.items():
        if found[name].type != kind or len(found[name].shape) != rank:
            raise ArtifactError(
                f"{path}: {name!r} is {found[name].type} of shape {found[name].shape}, "
                f"expected {kind} of rank {rank}"
            )
    columns = found[contract.INPUT_EXCLUDE].shape[1]
    if columns != n_movies:
        raise ArtifactError(
            f"{path}: scores {columns} movies but the ID mapping has {n_movies}; "
            "re-export with rec-export"
        )
    meta = dict(session.get_modelmeta().custom_metadata_map)
    for key, want, what in (
        (contract.META_MAPPING_SHA256, mapping_sha256, "ID mapping"),
        (contract.META_MODEL_SHA256, model_sha256, "model"),
    ):
        got = meta.get(key, "").strip().lower()
        if got != want:
            raise ArtifactError(
                f"{path}: records {what} SHA-256 {got[:12] or 'none'}..., but the loaded "
                f"{what} has {want[:12]}...; it belongs to another export (re-export with "
                f"rec-export, or delete {path.name} to score catalogs through the pairs graph)"
            )
    return CatalogGraph(session, path, n_movies)
