"""``catalog.onnx``: each user's candidate movies out of the whole catalog, cheaply.

The graph takes embedding rows of a block of users, the block's excluded pairs (sorted
flat keys, compact) and K, and returns per user the K movie rows with the highest upper
bounds of the rank score, with the bounds (``TopK`` inside; see
``movierec.export.folding.CatalogNet``). It belongs to one export: its metadata records
the SHA-256 of the ID mapping and of the ``model.onnx`` written with it, and both are
checked when it is opened. A graph of an older layout is ignored (with a warning):
catalog mode then scores every pair through ``model.onnx``.
"""

from __future__ import annotations

import json
import logging
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from movierec.serve_batch import contract
from movierec.serve_batch._session import create_session, session_threads
from movierec.serve_batch.errors import ArtifactError

log = logging.getLogger(__name__)

#: Expected ``(type, rank)`` of every input and output of catalog.onnx.
_IO = {
    contract.INPUT_USER: ("tensor(int64)", 1),
    contract.INPUT_EXCLUDED: ("tensor(int64)", 1),
    contract.INPUT_K: ("tensor(int64)", 0),
    contract.OUTPUT_TOP_MOVIE: ("tensor(int64)", 2),
    contract.OUTPUT_TOP_BOUND: ("tensor(float)", 2),
}
_OUTPUTS = [contract.OUTPUT_TOP_MOVIE, contract.OUTPUT_TOP_BOUND]


class CatalogGraph:
    """An opened, verified ``catalog.onnx``; create with :func:`open_catalog`.

    ``outdated`` names why a graph of another layout cannot be used (then ``usable`` is
    False and catalog mode scores every pair instead).
    """

    def __init__(
        self,
        session,
        path: Path,
        n_movies: int,
        *,
        call_pairs: int = 1,
        bound: str = "interval",
        outdated: str | None = None,
        workers: int = 1,
    ) -> None:
        self._session = session
        #: threads running single-threaded calls side by side (as the pairs graph's)
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self.path = path
        self.n_movies = n_movies
        #: users x movies per onnxruntime call (the exporter's choice, see META_CATALOG)
        self.call_pairs = call_pairs
        #: "interval" (a cheap upper bound) or "exact" (the rank score itself)
        self.bound = bound
        self.outdated = outdated

    @property
    def usable(self) -> bool:
        return self.outdated is None

    def __repr__(self) -> str:
        return f"CatalogGraph({str(self.path)!r}, movies={self.n_movies}, bound={self.bound})"

    def top_bounds(
        self, user_rows: np.ndarray, excluded: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(movie_rows, bounds)``, each ``[users, k]``: per user, the ``k`` movie rows
        with the highest upper bounds of the rank score, highest first.

        ``excluded``: sorted keys ``user_position * n_movies + movie_row`` (positions in
        ``user_rows``); those pairs come last with a bound of ``-inf``. ``1 <= k <=
        n_movies``. Calls of about ``call_pairs`` users x movies each.
        """
        n, n_movies = user_rows.size, self.n_movies
        rows = np.empty((n, k), dtype=np.int64)
        bounds = np.empty((n, k), dtype=np.float32)
        step = max(1, self.call_pairs // n_movies)
        kk = np.array(k, dtype=np.int64)
        starts = np.arange(0, n + step, step)
        cuts = np.searchsorted(excluded, np.minimum(starts, n) * n_movies)

        def run_span(first: int, last: int) -> None:
            """Calls ``first:last`` (of ``step`` users each), in one thread."""
            for i in range(first, last):
                a, b = starts[i], min(starts[i + 1], n)
                got = self._session.run(
                    _OUTPUTS,
                    {
                        contract.INPUT_USER: user_rows[a:b],
                        contract.INPUT_EXCLUDED: excluded[cuts[i] : cuts[i + 1]] - a * n_movies,
                        contract.INPUT_K: kk,
                    },
                )
                for value in got:
                    if value.shape != (b - a, k):
                        raise ArtifactError(
                            f"{self.path}: an output has shape {list(value.shape)} for "
                            f"{b - a} users and k={k}, expected [{b - a}, {k}]"
                        )
                rows[a:b], bounds[a:b] = got

        calls = -(-n // step)
        spans = min(self.workers, calls)
        if spans > 1:  # one contiguous span of calls per thread, as Artifacts.predict_rows
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="movierec-cat")
            edges = [calls * i // spans for i in range(spans + 1)]
            tasks = [
                self._pool.submit(run_span, a, b)
                for a, b in zip(edges[:-1], edges[1:], strict=True)
            ]
            futures.wait(tasks)  # every span finishes before an error is raised
            for task in tasks:
                task.result()
        else:
            run_span(0, calls)
        if rows.size and (rows.min() < 0 or rows.max() >= n_movies):
            raise ArtifactError(f"{self.path}: returned movie rows outside 0..{n_movies - 1}")
        if k > 1 and (bounds[:, 1:] > bounds[:, :-1]).any():
            raise ArtifactError(f"{self.path}: returned bounds that are not highest first")
        return rows, bounds


def open_catalog(
    path: Path,
    *,
    threads: int | None,
    graph_opt: str,
    n_movies: int,
    mapping_sha256: str,
    model_sha256: str,
) -> CatalogGraph:
    """Open ``path`` and check that it belongs to the loaded model and mapping, and its
    I/O and movie count (``ArtifactError`` naming the fix otherwise). A graph of an older
    layout comes back unusable (``outdated`` says why; a warning is logged). ``threads``:
    as for the pairs graph, single-threaded calls side by side (0/None: every core)."""
    intra_op, workers = session_threads(threads)
    session = create_session(path, intra_op, graph_opt)
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
    try:
        info = json.loads(meta.get(contract.META_CATALOG, "{}"))
        layout = int(info.get("format", 1)) if isinstance(info, dict) else 1
    except (ValueError, TypeError):
        info, layout = {}, 1
    if layout != contract.CATALOG_FORMAT:
        why = (
            f"{path}: catalog graph layout {layout}, this rec-score reads layout "
            f"{contract.CATALOG_FORMAT}; scoring every pair through {contract.MODEL_FILE} "
            "instead (re-export with rec-export for the fast catalog path)"
        )
        log.warning("%s", why)
        return CatalogGraph(None, path, n_movies, outdated=why)
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
    movies = info.get("movies")
    if movies != n_movies:
        raise ArtifactError(
            f"{path}: scores {movies} movies but the ID mapping has {n_movies}; "
            "re-export with rec-export"
        )
    call_pairs = info.get("call_pairs")
    if not isinstance(call_pairs, int) or call_pairs < 1:
        raise ArtifactError(f"{path}: {contract.META_CATALOG} has no valid call_pairs")
    return CatalogGraph(
        session,
        path,
        n_movies,
        call_pairs=call_pairs,
        bound=str(info.get("bound", "interval")),
        workers=workers,
    )
