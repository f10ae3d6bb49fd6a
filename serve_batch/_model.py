"""The Python API: ``load_model(folder).predict(df)`` and ``.recommend(users, k=10)``.

Both run the driver's own pairs and catalog code (``movierec.serve_batch._driver``) on
tables held in memory, so a DataFrame scored here gets exactly the numbers ``rec-score``
writes for the same rows, and ``recommend`` the table of ``rec-score --all-movies``.
pandas is imported only when the caller passes a pandas object.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from movierec.serve_batch import contract
from movierec.serve_batch._arrow import from_numpy, strings_from_list
from movierec.serve_batch._artifacts import Artifacts, load_artifacts
from movierec.serve_batch._catalog_job import apply_unknown_policy, read_exclusions, read_users
from movierec.serve_batch._config import DEFAULT_CATALOG_TOP_K, RuntimeOptions, ScoreJob
from movierec.serve_batch._driver import (
    Sink,
    catalog_spec,
    stream_catalog,
    stream_pairs,
    warn_no_rows,
)
from movierec.serve_batch._executors import LocalExecutor
from movierec.serve_batch._io import table_input
from movierec.serve_batch._pairs import PairsTotals, pairs_spec
from movierec.serve_batch._topk import topk_schema
from movierec.serve_batch.errors import DataError, UsageError


def load_model(
    artifacts: str | Path = "artifacts",
    *,
    threads: int = 0,
    graph_opt: str = "all",
    batch_size: int | None = None,
    use_catalog: bool = True,
) -> Model:
    """Load the folder ``rec-export`` wrote (``model.onnx``, ``id_mapping.json`` and, if
    present, ``catalog.onnx``), checking that the mapping is the one the model was
    exported with (its SHA-256). ``threads=0``: one scoring thread per core;
    ``use_catalog=False`` scores catalogs through the pairs graph (slower, same table).
    """
    options = {} if batch_size is None else {"batch_size": batch_size}
    runtime = RuntimeOptions(threads=threads, graph_opt=graph_opt, **options)
    folder = Path(artifacts)
    arts = load_artifacts(
        folder / contract.MODEL_FILE,
        folder / contract.MAPPING_FILE,
        threads=runtime.threads,
        graph_opt=runtime.graph_opt,
        use_catalog=use_catalog,
        parallelism=runtime.parallelism,
    )
    return Model(arts, runtime)


class Model:
    """A loaded, verified model and ID mapping with ``rec-score``'s two modes."""

    def __init__(self, artifacts: Artifacts, runtime: RuntimeOptions | None = None) -> None:
        self.artifacts = artifacts
        self.runtime = runtime or RuntimeOptions()

    def __repr__(self) -> str:
        arts = self.artifacts
        return (
            f"Model({str(arts.model_path.parent)!r}, users={len(arts.users)}, "
            f"movies={len(arts.movies)}, rating_scale={arts.rating_scale})"
        )

    @property
    def id_types(self) -> dict[str, str]:
        """``{"user": "int" | "string", "movie": ...}``: the IDs each side takes and gives."""
        return self.artifacts.id_types

    @property
    def columns(self) -> dict[str, str]:
        """``{"user": ..., "movie": ...}``: the training data's ID columns, the default
        ``user_col`` / ``movie_col`` of :meth:`predict` and :meth:`recommend`."""
        return self.artifacts.columns

    def predict(
        self,
        data: Any,
        *,
        user_col: str | None = None,
        movie_col: str | None = None,
        on_unknown: str = "fallback",
    ) -> Any:
        """Score every (user, movie) row of ``data``: a pandas DataFrame, or a pyarrow
        Table or RecordBatch, and the same type back.

        The result is what ``rec-score`` writes for those rows: every column of ``data``
        (ID columns in the model's ID types, :attr:`id_types`) plus ``predicted_rating``
        (float32) and ``cold_start``. ``user_col`` / ``movie_col``: the ID columns of
        ``data`` (default: the model's, :attr:`columns`).
        ``on_unknown``: "fallback" scores IDs missing from the mapping with the fallback
        means (``cold_start`` True), "skip" drops those rows (a DataFrame keeps the
        index of the rows kept), "error" raises ``DataError``.
        """
        table, kind = _as_table(data, "data")
        job = ScoreJob(
            input=Path("data"),
            output=Path("predictions"),
            user_col=user_col,
            movie_col=movie_col,
            on_unknown=on_unknown,
        ).with_model_columns(self.artifacts.id_schema)
        ids = job.id_schema(self.artifacts.id_schema)
        inp = table_input(table, "data", ids.id_columns)
        spec = pairs_spec(job, table.schema, "data", self.runtime.batch_size, ids)
        sink = Sink.memory()
        kept: list[np.ndarray] = []

        def note(result: Any) -> None:
            kept.append(np.ones(result.rows, bool) if result.kept is None else result.kept)

        stream_pairs(
            LocalExecutor(self.artifacts, prefetch=False),
            inp,
            spec,
            PairsTotals(None, None),
            sink,
            batch_size=self.runtime.batch_size,
            on_result=note,
        )
        out = pa.Table.from_batches(sink.tables, schema=spec.out_schema)
        if kind == "pandas":
            frame = out.to_pandas()
            index = data.index
            if kept and not all(k.all() for k in kept):
                index = index[np.concatenate(kept)]
            frame.index = index
            return frame
        return _like(out, kind)

    def recommend(
        self,
        users: Any,
        k: int = DEFAULT_CATALOG_TOP_K,
        *,
        exclude: Any = None,
        on_unknown: str = "fallback",
        titles: bool = False,
        user_col: str | None = None,
        movie_col: str | None = None,
    ) -> Any:
        """Each user's ``k`` best movies of the whole catalog: the table ``rec-score
        --all-movies`` writes (user, rank, movie, predicted_rating, score,
        cold_start[, title]; the ID columns named ``user_col`` / ``movie_col``).

        ``users``: user IDs of the model's type (a list, numpy array, pyarrow array or
        pandas Series), or a table or DataFrame with a ``user_col`` column; duplicates
        are scored once. ``exclude``: a table or DataFrame of (user, movie) pairs never
        recommended, e.g. the ratings users already gave. ``user_col`` / ``movie_col``:
        the ID columns of those tables and of the result (default: the model's,
        :attr:`columns`). A pandas DataFrame comes back when ``users`` or ``exclude`` is a
        pandas object, else a pyarrow Table.
        """
        arts, rt = self.artifacts, self.runtime
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise UsageError(f"k must be at least 1, got {k!r}")
        job = ScoreJob(
            input=Path("users"),
            output=Path("recommendations"),
            user_col=user_col,
            movie_col=movie_col,
            top_k=int(k),
            on_unknown=on_unknown,
            all_movies=True,
            exclude=None if exclude is None else Path("exclude"),
            titles=titles,
        ).with_model_columns(arts.id_schema)
        ids = job.id_schema(arts.id_schema)
        users_table, kind = _as_table(users, "users", column=ids.user_col)
        all_users, rows = read_users(
            table_input(users_table, "users", (ids.user_col,)), ids, rt.batch_size
        )
        if rows == 0:
            warn_no_rows("users", "users")
        todo, _ = apply_unknown_policy(job, arts, all_users, "users")
        excluded = None
        if exclude is not None:
            ex_table, ex_kind = _as_table(exclude, "exclude")
            kind = "pandas" if ex_kind == "pandas" else kind
            ex = table_input(ex_table, "exclude", ids.id_columns)
            excluded, _ = read_exclusions(ex, ids, arts, todo, rt.batch_size)
        spec = catalog_spec(job, arts, rt.batch_size)
        arts.title_lookup(titles)  # warns once when the mapping has no titles
        sink = Sink.memory()
        stream_catalog(
            LocalExecutor(arts, prefetch=False),
            spec,
            todo,
            excluded,
            sink,
            per_task=spec.per_block,
        )
        schema = topk_schema(ids, titles)
        out = pa.Table.from_batches([b for t in sink.tables for b in t.to_batches()], schema=schema)
        return out.to_pandas() if kind == "pandas" else out


def _is_pandas(obj: Any) -> bool:
    """Whether ``obj`` is a pandas object, without importing pandas."""
    return "pandas" in sys.modules and type(obj).__module__.split(".")[0] == "pandas"


def _as_table(data: Any, name: str, column: str | None = None) -> tuple[pa.Table, str]:
    """``data`` as a pyarrow Table, and what it was: "pandas", "table", "batch", "ids"."""
    if _is_pandas(data):
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False), "pandas"
        if isinstance(data, pd.Series) and column is not None:
            return pa.table({column: pa.Array.from_pandas(data)}), "pandas"
    if isinstance(data, pa.Table):
        return data, "table"
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]), "batch"
    if column is not None:  # a sequence of IDs
        if isinstance(data, (pa.Array, pa.ChunkedArray)):
            return pa.table({column: data}), "ids"
        if isinstance(data, (list, tuple)) and data and all(isinstance(v, str) for v in data):
            # not through numpy: its str type drops trailing NULs ("a\x00" -> "a")
            return pa.Table.from_arrays([strings_from_list(list(data))], names=[column]), "ids"
        values = np.asarray(data) if not isinstance(data, str) else np.empty((0, 0))
        if values.ndim == 1 and values.dtype.kind in "iuf":
            return pa.Table.from_arrays([from_numpy(values)], names=[column]), "ids"
        if values.ndim == 1 and values.size == 0:
            return pa.Table.from_arrays([from_numpy(values, np.int64)], names=[column]), "ids"
        if values.ndim == 1 and values.dtype.kind in "UO":
            items = values.tolist()
            if all(isinstance(v, str) for v in items):
                return pa.Table.from_arrays([strings_from_list(items)], names=[column]), "ids"
    expected = "a pandas DataFrame or a pyarrow Table"
    if column is not None:
        expected += f" with a {column!r} column, or a 1-D sequence of IDs"
    raise DataError(f"{name}: expected {expected}, got {type(data).__name__}")


def _like(table: pa.Table, kind: str) -> pa.Table | pa.RecordBatch:
    if kind == "batch":
        return pa.RecordBatch.from_arrays(
            [c.combine_chunks() for c in table.columns], schema=table.schema
        )
    return table
