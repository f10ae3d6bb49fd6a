"""Load ``model.onnx`` + ``id_mapping.json``, check they belong together, and predict.

Fallback for IDs missing from the mapping (``on_unknown="fallback"``), by design:

* unknown user, known movie  -> ``fallback.movie_mean[movie]``
* known user, unknown movie  -> ``fallback.user_mean[user]``
* unknown user and movie     -> ``fallback.global_mean``

The result is clipped to the rating scale and the row is flagged ``cold_start=True``.
Only pairs whose user and movie are both known go through the ONNX graph, so the
scorer knows nothing of the model's internals beyond its input and output names.

Ranking (top-k tables): by the graph's optional ``rank_score`` output when it has one,
else by the rating; a cold-start pair's rank score is its fallback rating.

Catalog mode also uses ``catalog.onnx`` when the export wrote one beside the model
(opened on first use, see :attr:`Artifacts.catalog`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from movierec.serve_batch import _session, contract
from movierec.serve_batch._arrow import from_numpy, strings_from_list
from movierec.serve_batch._catalog_graph import CatalogGraph, open_catalog
from movierec.serve_batch._config import DEFAULT_BATCH_SIZE, UNKNOWN_POLICIES
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch._idmap import IdMap, StringIdMap, build_idmap
from movierec.serve_batch._ids import convert_ids
from movierec.serve_batch._idvalues import Ids, distinct, first_distinct, is_text, keep, show
from movierec.serve_batch._mapping_json import loads_mapping
from movierec.serve_batch._session import has_rank_output, open_session, session_threads
from movierec.serve_batch._topk import TitleLookup
from movierec.serve_batch.errors import ArtifactError, DataError, UsageError

log = logging.getLogger(__name__)

#: How many offending IDs an error message shows.
SHOW_IDS = 5


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Prediction:
    """Scores of one call to :meth:`Artifacts.predict_ids`.

    ``ratings``, ``rank_scores`` and ``cold_start`` cover the kept rows only (all rows
    unless ``on_unknown="skip"``); ``kept``, ``unknown_user`` and ``unknown_movie`` are
    masks over the input rows. ``rank_scores`` is the graph's ``rank_score`` output (what
    top-k lists are ordered by), the rating itself for a graph without one and for
    cold-start rows.
    """

    ratings: np.ndarray
    cold_start: np.ndarray
    kept: np.ndarray
    unknown_user: np.ndarray
    unknown_movie: np.ndarray
    rank_scores: np.ndarray


class Artifacts:
    """A loaded, verified model and ID mapping; create with :func:`load_artifacts`."""

    def __init__(
        self,
        *,
        session: Any,
        users: IdMap | StringIdMap,
        movies: IdMap | StringIdMap,
        global_mean: float,
        rating_scale: tuple[float, float],
        metadata: dict[str, str],
        model_path: Path,
        mapping_path: Path,
        model_sha256: str,
        mapping_sha256: str,
        catalog_path: Path | None = None,
        threads: int | None = None,
        graph_opt: str = "all",
        parallel_calls: int = 1,
        run_rows: int | None = None,
        intra_op_threads: int | None = None,
        titles: dict[int, str] | dict[str, str] | None = None,
        id_schema: IdSchema | None = None,
    ) -> None:
        self._session = session
        #: Threads that run onnxruntime calls side by side (each call single-threaded).
        self.parallel_calls = parallel_calls
        #: Pairs per onnxruntime call at most.
        self.run_rows = run_rows or _session.RUN_ROWS
        #: onnxruntime intra-op threads of the session (None: onnxruntime's default).
        self.intra_op_threads = intra_op_threads
        self._pool: ThreadPoolExecutor | None = None
        self._warmed_rows = 0
        self._warm_lock = threading.Lock()
        self.has_rank_score = has_rank_output(session)
        self._outputs = [contract.OUTPUT_RATING] + (
            [contract.OUTPUT_RANK] if self.has_rank_score else []
        )
        self.users = users
        self.movies = movies
        self.global_mean = float(global_mean)
        self._rating_scale = rating_scale
        self._metadata = dict(metadata)
        self.model_path = model_path
        self.mapping_path = mapping_path
        self._model_sha256 = model_sha256
        self.mapping_sha256 = mapping_sha256
        self.catalog_path = catalog_path
        self._session_settings = (threads, graph_opt)
        self._catalog: CatalogGraph | None = None
        self._movie_pos_of_row: np.ndarray | None = None
        self._title_dict = dict(titles or {})
        self._titles: TitleLookup | None = None
        #: The model's ID columns and types (``id_mapping.json``'s ``columns`` and
        #: ``id_types``; integer IDs under user_id / movie_id for an older mapping).
        self.id_schema = id_schema or IdSchema()

    def __repr__(self) -> str:
        return (
            f"Artifacts(model={str(self.model_path)!r}, users={len(self.users)}, "
            f"movies={len(self.movies)}, rating_scale={self._rating_scale})"
        )

    @property
    def id_types(self) -> dict[str, str]:
        """``{"user": "int" | "string", "movie": ...}``: the ID type of each side."""
        return self.id_schema.id_types

    @property
    def columns(self) -> dict[str, str]:
        """``{"user": ..., "movie": ...}``: the training data's ID column names (the
        scorer's default ID columns)."""
        return self.id_schema.columns

    @property
    def rating_scale(self) -> tuple[float, float]:
        """``(min, max)`` of the ratings; every score lies within it."""
        return self._rating_scale

    @property
    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props`` (a copy)."""
        return dict(self._metadata)

    @property
    def model_sha256(self) -> str:
        """SHA-256 hex of the model file's bytes."""
        return self._model_sha256

    @property
    def catalog(self) -> CatalogGraph | None:
        """The catalog graph, opened and verified on first use; None without one."""
        if self._catalog is None and self.catalog_path is not None:
            threads, graph_opt = self._session_settings
            self._catalog = open_catalog(
                self.catalog_path,
                threads=threads,
                graph_opt=graph_opt,
                n_movies=len(self.movies),
                mapping_sha256=self.mapping_sha256,
                model_sha256=self._model_sha256,
            )
        return self._catalog

    @property
    def titles(self) -> TitleLookup:
        """Movie titles from the mapping (empty where the training data had none)."""
        if self._titles is None:
            self._titles = TitleLookup(self._title_dict, self.movies.id_type)
        return self._titles

    def title_lookup(self, wanted: bool) -> TitleLookup | None:
        """:attr:`titles` for a top-k table with ``--titles`` (None without it); warns
        when the mapping has no titles at all."""
        if not wanted:
            return None
        if not len(self.titles):
            log.warning(
                "%s has no movie titles (the training data had none): the title column is empty",
                self.mapping_path,
            )
        return self.titles

    @property
    def movie_pos_of_row(self) -> np.ndarray:
        """Position in ``movies.ids`` (ID ascending) of each movie embedding row."""
        if self._movie_pos_of_row is None:
            inverse = np.full(int(self.movies.rows.max()) + 1, -1, dtype=np.int64)
            inverse[self.movies.rows] = np.arange(self.movies.rows.size)
            self._movie_pos_of_row = inverse
        return self._movie_pos_of_row

    def predict_ids(
        self,
        user_ids: Any,
        movie_ids: Any,
        on_unknown: str = "fallback",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Prediction:
        """Score raw-ID pairs exactly as ``rec-score`` does (it calls this per batch).

        IDs of the model's type (:attr:`id_types`): integer IDs as a 1-D integer array;
        string IDs as an Arrow string column, or a list or array of str (integers are read
        as their decimal text).

        ``on_unknown``: ``"fallback"`` (documented fallback means, ``cold_start`` True),
        ``"skip"`` (drop the pair, see ``kept``) or ``"error"`` (``DataError`` with the
        count and first offending IDs).
        """
        users = as_ids(user_ids, self.users.id_type, "user_ids", "user")
        movies = as_ids(movie_ids, self.movies.id_type, "movie_ids", "movie")
        if len(users) != len(movies):
            raise DataError(
                f"user_ids and movie_ids differ in length: {len(users)} vs {len(movies)}"
            )
        if on_unknown not in UNKNOWN_POLICIES:
            raise UsageError(
                f"on_unknown must be one of {', '.join(UNKNOWN_POLICIES)}, got {on_unknown!r}"
            )
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        user_found, movie_found = self.lookup_ids(users, movies)
        if on_unknown == "error" and not (user_found[1].all() and movie_found[1].all()):
            raise DataError(
                describe_unknown(users, ~user_found[1], movies, ~movie_found[1]),
                params=("on_unknown",),
            )
        return self.predict_found(user_found, movie_found, on_unknown, batch_size)

    def lookup_ids(self, users: Ids, movies: Ids) -> tuple[tuple, tuple]:
        """``(rows, known, pos)`` of the users and of the movies (``IdMap.lookup``).

        String lookups run side by side on the scoring threads (Arrow and numpy release
        the GIL): 1.5-3 ms each per 65,536 IDs against 30k-160k IDs, on the scoring
        thread's critical path (bench/string_ids.py); integer lookups take 0.15 ms."""
        if self.parallel_calls > 1 and (is_text(users) or is_text(movies)):
            user_task = self._thread_pool().submit(self.users.lookup, users)
            movie_found = self.movies.lookup(movies)
            return user_task.result(), movie_found
        return self.users.lookup(users), self.movies.lookup(movies)

    def predict_found(
        self,
        user_found: tuple[np.ndarray, np.ndarray, np.ndarray],
        movie_found: tuple[np.ndarray, np.ndarray, np.ndarray],
        on_unknown: str,
        batch_size: int,
    ) -> Prediction:
        """:meth:`predict_ids` on IDs already looked up: ``(rows, known, pos)`` of each side
        (what ``IdMap.lookup`` answers). ``on_unknown="error"`` is the caller's to check."""
        user_rows, user_known, user_pos = user_found
        movie_rows, movie_known, movie_pos = movie_found
        both = user_known & movie_known
        n = user_rows.size
        unknown_user, unknown_movie = ~user_known, ~movie_known
        if both.all():  # the common case: no masking copies
            ratings, ranks = self.predict_rows(user_rows, movie_rows, batch_size)
            return Prediction(
                ratings=ratings,
                cold_start=np.zeros(n, dtype=bool),
                kept=np.ones(n, dtype=bool),
                unknown_user=unknown_user,
                unknown_movie=unknown_movie,
                rank_scores=ranks,
            )
        if on_unknown == "skip":
            ratings, ranks = self.predict_rows(user_rows[both], movie_rows[both], batch_size)
            return Prediction(
                ratings=ratings,
                cold_start=np.zeros(ratings.size, dtype=bool),
                kept=both,
                unknown_user=unknown_user,
                unknown_movie=unknown_movie,
                rank_scores=ranks,
            )
        ratings = np.empty(n, dtype=np.float32)
        model_ratings, model_ranks = self.predict_rows(
            user_rows[both], movie_rows[both], batch_size
        )
        ratings[both] = model_ratings
        only_movie = unknown_user & movie_known
        only_user = user_known & unknown_movie
        ratings[only_movie] = self.movies.means[movie_pos[only_movie]]
        ratings[only_user] = self.users.means[user_pos[only_user]]
        ratings[unknown_user & unknown_movie] = self.global_mean
        lo, hi = self._rating_scale
        np.clip(ratings, lo, hi, out=ratings)
        ranks = ratings
        if self.has_rank_score:
            ranks = ratings.copy()
            ranks[both] = model_ranks
        return Prediction(
            ratings=ratings,
            cold_start=~both,
            kept=np.ones(n, dtype=bool),
            unknown_user=unknown_user,
            unknown_movie=unknown_movie,
            rank_scores=ranks,
        )

    def predict_rows(
        self, user_rows: np.ndarray, movie_rows: np.ndarray, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph on embedding rows: calls of at most ``batch_size`` pairs (and of
        the session's measured call size, ``run_rows``), spread over ``parallel_calls``
        threads.

        Returns float32 ``(ratings, rank_scores)``; the two are one array when the graph
        has no ``rank_score`` output.
        """
        n = user_rows.size
        ratings = np.empty(n, dtype=np.float32)
        ranks = np.empty(n, dtype=np.float32) if self.has_rank_score else ratings
        step = max(1, min(batch_size, self.run_rows))
        self._warm_up(self.run_rows)
        session, outputs, has_rank = self._session, self._outputs, self.has_rank_score

        def run_span(first: int, last: int) -> None:
            """Score rows ``first:last`` in calls of ``step`` pairs (one thread)."""
            for start in range(first, last, step):
                stop = min(start + step, last)
                got = session.run(
                    outputs,
                    {
                        contract.INPUT_USER: user_rows[start:stop],
                        contract.INPUT_MOVIE: movie_rows[start:stop],
                    },
                )
                for name, value in zip(outputs, got, strict=True):
                    if value.size != stop - start:
                        raise ArtifactError(
                            f"{self.model_path}: output {name!r} has shape "
                            f"{list(value.shape)} for a batch of {stop - start} pairs, "
                            f"expected [{stop - start}]"
                        )
                ratings[start:stop] = got[0].reshape(-1)
                if has_rank:
                    ranks[start:stop] = got[1].reshape(-1)

        calls = -(-n // step)
        if self.parallel_calls > 1 and calls > 1:
            # One contiguous span of whole calls per thread, one task each: a task per call
            # cost a fifth of the throughput in scheduling (bench/score.py's bare loop, 2
            # cores, 1024 pairs per call: 4.39M pairs/s with a task per call, 5.45M with a
            # span per thread).
            spans = min(self.parallel_calls, calls)
            bounds = [min(n, step * (calls * i // spans)) for i in range(spans + 1)]
            tasks = [
                self._thread_pool().submit(run_span, a, b)
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            ]
            futures.wait(tasks)  # every span finishes before an error is raised
            for task in tasks:
                task.result()
        else:
            run_span(0, n)
        lo, hi = self._rating_scale
        np.clip(ratings, lo, hi, out=ratings)  # the graph clips already; this guards odd exports
        return ratings, ranks

    def _warm_up(self, rows: int) -> None:
        """Make the session's first call a full one of ``rows`` pairs (row 0 of each table).

        onnxruntime plans its memory for the first shape it runs; when that call was
        smaller than the calls that follow (the first CSV block, a catalog re-score),
        every later call of ``run_rows`` pairs measured 9-35% slower for the rest of the
        run (bench/tune_ort.py "first call of the session"; 2 cores)."""
        if self._warmed_rows:
            return
        with self._warm_lock:
            if not self._warmed_rows:
                zeros = np.zeros(rows, dtype=np.int64)
                self._session.run(
                    self._outputs, {contract.INPUT_USER: zeros, contract.INPUT_MOVIE: zeros}
                )
                self._warmed_rows = rows

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel_calls, thread_name_prefix="movierec-ort")
        return self._pool


def load_artifacts(
    model_path: Path,
    mapping_path: Path,
    *,
    threads: int | None = None,
    graph_opt: str = "all",
    catalog_path: Path | None = None,
    use_catalog: bool = True,
    parallelism: str = "calls",
) -> Artifacts:
    """Load and cross-check a model and its ID mapping; ``ArtifactError`` if they disagree.

    Refuses missing or corrupt files, a format version other than
    ``contract.FORMAT_VERSION``, and a mapping whose SHA-256 differs from the one the
    exporter recorded in the model (so a model never scores with another run's IDs).
    ``threads``: CPU threads for scoring (None or 0: one per core); by default that many
    single-threaded onnxruntime calls run side by side (``parallelism="calls"``; "intra"
    gives one call that many intra-op threads).
    ``catalog_path``: the catalog graph (default: ``catalog.onnx`` beside the model, if
    there is one); ``use_catalog=False`` ignores it (catalog mode then scores every pair
    through the model).
    """
    model_path, mapping_path = Path(model_path), Path(mapping_path)
    intra_op, calls = session_threads(threads, parallelism)
    try:
        loaded = _load_matching(model_path, mapping_path, intra_op, graph_opt)
    except _MappingMismatch:
        # rec-export renames the new mapping into place just before the new model: a
        # scorer starting between the two renames read one of each. Read both again.
        time.sleep(MISMATCH_RETRY_SECONDS)
        try:
            loaded = _load_matching(model_path, mapping_path, intra_op, graph_opt)
        except _MappingMismatch as exc:
            raise ArtifactError(str(exc)) from None
    model_bytes, mapping_bytes, session, metadata, mapping_sha = loaded

    try:
        mapping = loads_mapping(mapping_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{mapping_path}: not valid JSON ({exc})") from exc
    if not isinstance(mapping, dict):
        raise ArtifactError(f"{mapping_path}: expected a JSON object at the top level")
    _check_format_version(mapping.get(contract.MAPPING_FORMAT_VERSION), mapping_path, "field")
    rating_scale = _read_rating_scale(metadata, mapping, model_path, mapping_path)
    id_schema = IdSchema.from_mapping(mapping, mapping_path)
    users, movies, global_mean = _read_index(mapping, mapping_path, id_schema)
    titles = _read_titles(mapping, mapping_path, id_schema.movie_type)
    return Artifacts(
        session=session,
        users=users,
        movies=movies,
        global_mean=global_mean,
        rating_scale=rating_scale,
        metadata=metadata,
        model_path=model_path,
        mapping_path=mapping_path,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        mapping_sha256=mapping_sha,
        titles=titles,
        catalog_path=_find_catalog(model_path, catalog_path) if use_catalog else None,
        threads=threads,
        graph_opt=graph_opt,
        parallel_calls=calls,
        intra_op_threads=intra_op,
        id_schema=id_schema,
    )


#: Pause before reading a model and mapping again whose hashes did not match.
MISMATCH_RETRY_SECONDS = 0.5


class _MappingMismatch(Exception):
    """The mapping's SHA-256 is not the one the model records (maybe mid-export)."""


def _load_matching(
    model_path: Path, mapping_path: Path, intra_op: int | None, graph_opt: str
) -> tuple[bytes, bytes, Any, dict[str, str], str]:
    """Read the model and mapping, open the session and check that they belong together."""
    model_bytes = _read_artifact(model_path, "model")
    mapping_bytes = _read_artifact(mapping_path, "ID mapping")
    session = open_session(model_path, intra_op, graph_opt)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    _check_format_version(metadata.get(contract.META_FORMAT_VERSION), model_path, "metadata")
    mapping_sha = hashlib.sha256(mapping_bytes).hexdigest()
    expected_sha = metadata.get(contract.META_MAPPING_SHA256)
    if not expected_sha:
        raise ArtifactError(
            f"{model_path}: no {contract.META_MAPPING_SHA256} metadata, so its ID mapping "
            "cannot be verified; re-export the model with rec-export"
        )
    if expected_sha.strip().lower() != mapping_sha:
        raise _MappingMismatch(
            f"{mapping_path}: SHA-256 {mapping_sha[:12]}... does not match the "
            f"{expected_sha.strip()[:12]}... recorded in {model_path}; the mapping was edited "
            "or belongs to another export (use the id_mapping.json written with this model)"
        )
    return model_bytes, mapping_bytes, session, metadata, mapping_sha


def _find_catalog(model_path: Path, catalog_path: Path | None) -> Path | None:
    if catalog_path is None:
        beside = model_path.parent / contract.CATALOG_FILE
        return beside if beside.is_file() else None
    catalog_path = Path(catalog_path)
    if not catalog_path.is_file():
        raise ArtifactError(f"{catalog_path}: catalog graph not found")
    return catalog_path


def describe_unknown(
    users: Ids,
    user_unknown: np.ndarray,
    movies: Ids,
    movie_unknown: np.ndarray,
    row_offset: int = 0,
) -> str:
    """One line for ``on_unknown="error"``: counts, first offending IDs and the fix."""
    bad = user_unknown | movie_unknown
    first_row = int(np.argmax(bad)) + row_offset
    parts = []
    for kind, ids, mask in (("user", users, user_unknown), ("movie", movies, movie_unknown)):
        if mask.any():
            parts.append(
                f"{int(mask.sum())} rows with an unknown {kind} ID "
                f"({format_first_ids(keep(ids, mask))})"
            )
    return (
        f"{int(bad.sum())} of {bad.size} pairs have IDs missing from the ID mapping: "
        f"{'; '.join(parts)}; first at row {first_row} (0-based). "
        "Use {on_unknown} fallback or {on_unknown} skip to score or drop them"
    )


def format_first_ids(ids: Ids, count: int = SHOW_IDS) -> str:
    """``"3 distinct, first: 7, 99, 12"`` in order of first appearance (string IDs quoted:
    ``'c-7', 'c-99'``)."""
    n_distinct = len(distinct(ids))
    shown = first_distinct(ids, count)
    more = ", ..." if n_distinct > count else ""
    return f"{n_distinct} distinct, first: {', '.join(show(v) for v in shown)}{more}"


# --- helpers ----------------------------------------------------------------------------


def as_ids(values: Any, id_type: str, name: str, kind: str) -> Ids:
    """IDs given to the Python API as the scorer holds them: int64 numpy for integer IDs,
    an Arrow string array for string IDs; ``DataError`` naming ``name`` otherwise."""
    if id_type == contract.ID_TYPE_STRING:
        if isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values):
            values = strings_from_list(list(values))  # numpy's str type drops trailing NULs
        if not is_text(values):
            arr = np.asarray(values)
            if arr.ndim != 1:
                raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
            if arr.dtype.kind in "iu":
                values = from_numpy(arr, np.int64)
            elif arr.dtype.kind in "UO" and all(isinstance(v, str) for v in arr.tolist()):
                values = strings_from_list(arr.tolist())
            else:
                raise DataError(f"{name} must hold string {kind} IDs, got dtype {arr.dtype}")
        return convert_ids(values, id_type, source="the IDs given", name=name, kind=kind)
    if is_text(values):
        return convert_ids(values, id_type, source="the IDs given", name=name, kind=kind)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise DataError(f"{name} must hold integer IDs, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _read_artifact(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise ArtifactError(
            f"{what} not found: {path} (run rec-export, or give the artifacts folder holding "
            f"{contract.MODEL_FILE} and {contract.MAPPING_FILE})"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read {what} ({exc.strerror})") from exc


def _check_format_version(value: Any, path: Path, where: str) -> None:
    key = contract.META_FORMAT_VERSION if where == "metadata" else contract.MAPPING_FORMAT_VERSION
    if value is None:
        raise ArtifactError(
            f"{path}: no {key!r} {where}; not an artifact written by rec-export "
            f"(format version {contract.FORMAT_VERSION})"
        )
    try:
        version = int(str(value).split(".")[0])
    except ValueError:
        version = None
    if version != contract.FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {value!r}, but this rec-score reads format "
            f"version {contract.FORMAT_VERSION}; re-export the model with a matching rec-export"
        )


def _read_rating_scale(
    metadata: dict[str, str], mapping: dict, model_path: Path, mapping_path: Path
) -> tuple[float, float]:
    from_model = None
    if contract.META_RATING_MIN in metadata and contract.META_RATING_MAX in metadata:
        try:
            from_model = (
                float(metadata[contract.META_RATING_MIN]),
                float(metadata[contract.META_RATING_MAX]),
            )
        except ValueError as exc:
            raise ArtifactError(f"{model_path}: rating scale metadata is not numeric") from exc
    from_mapping = None
    scale = mapping.get(contract.MAPPING_RATING_SCALE)
    if scale is not None:
        try:
            from_mapping = (float(scale["min"]), float(scale["max"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise ArtifactError(
                f"{mapping_path}: {contract.MAPPING_RATING_SCALE!r} must be "
                '{"min": number, "max": number}'
            ) from exc
    if from_model and from_mapping and from_model != from_mapping:
        raise ArtifactError(
            f"rating scale {from_model} in {model_path} differs from {from_mapping} in "
            f"{mapping_path}"
        )
    result = from_model or from_mapping
    if result is None:
        raise ArtifactError(
            f"{model_path}: no rating scale ({contract.META_RATING_MIN}/"
            f"{contract.META_RATING_MAX} metadata or {contract.MAPPING_RATING_SCALE!r} in "
            f"{mapping_path})"
        )
    lo, hi = result
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ArtifactError(f"{model_path}: invalid rating scale {result}")
    return result


def _read_titles(mapping: dict, path: Path, id_type: str) -> dict[int, str] | dict[str, str]:
    titles = mapping.get(contract.MAPPING_TITLES) or {}
    key = str if id_type == contract.ID_TYPE_STRING else int
    try:
        return {key(k): str(v) for k, v in dict(titles).items()}
    except (TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: {contract.MAPPING_TITLES!r} must map movie IDs to titles ({exc})"
        ) from exc


def _read_index(
    mapping: dict, path: Path, id_schema: IdSchema
) -> tuple[IdMap | StringIdMap, IdMap | StringIdMap, float]:
    fallback = mapping.get(contract.MAPPING_FALLBACK)
    if not isinstance(fallback, dict):
        raise ArtifactError(f"{path}: missing {contract.MAPPING_FALLBACK!r} object")
    try:
        global_mean = float(fallback[contract.FALLBACK_GLOBAL_MEAN])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: {contract.MAPPING_FALLBACK}.{contract.FALLBACK_GLOBAL_MEAN} must be a number"
        ) from exc
    maps = []
    for index_key, mean_key, id_type in (
        (contract.MAPPING_USER_INDEX, contract.FALLBACK_USER_MEAN, id_schema.user_type),
        (contract.MAPPING_MOVIE_INDEX, contract.FALLBACK_MOVIE_MEAN, id_schema.movie_type),
    ):
        index = mapping.get(index_key)
        means = fallback.get(mean_key, {})
        if not isinstance(index, Mapping) or not index:
            raise ArtifactError(f"{path}: {index_key!r} must be a non-empty object")
        if not isinstance(means, Mapping):
            raise ArtifactError(f"{path}: {contract.MAPPING_FALLBACK}.{mean_key} must be an object")
        try:
            maps.append(build_idmap(index, means, global_mean, id_type))
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: bad {index_key!r} or {mean_key!r}: {exc}") from exc
    return maps[0], maps[1], global_mean
