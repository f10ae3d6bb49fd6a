"""The Python API: ``load_model(folder).predict`` and ``.recommend`` give exactly what
``rec-score`` writes, on the same driver; pandas only when the caller passes pandas."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from movierec.serve_batch import (
    DataError,
    Model,
    UsageError,
    load_artifacts,
    load_model,
)
from tests.support import write_table

REPO = Path(__file__).resolve().parents[2]


def bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)


def pairs_with_extras(fake, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = np.r_[fake.user_ids, [1, 2, 99999]]
    movies = np.r_[fake.movie_ids, [3, 88888]]
    return pa.table(
        {
            "note": [f"row-{i}" for i in range(n)],
            "user_id": rng.choice(users, n),
            "movie_id": rng.choice(movies, n),
            "rating": rng.integers(1, 6, n).astype(np.float64),
        }
    )


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_predict_equals_rec_score_bit_for_bit(any_fake, run_cli, tmp_path: Path, fmt: str) -> None:
    """A DataFrame and a Table scored in memory equal rec-score's OUTPUT file (batches of
    64 rows through both), unknown IDs and extra columns included."""
    fake = any_fake
    table = pairs_with_extras(fake, 700, seed=1)
    inp = write_table(tmp_path / f"in.{fmt}", table)
    code, err = run_cli(
        inp,
        tmp_path / "out.parquet",
        "--batch-size",
        "64",
        "--artifacts",
        fake.folder,
        artifacts=False,
    )
    assert code == 0, err
    written = pq.read_table(tmp_path / "out.parquet")
    model = load_model(fake.folder, batch_size=64)
    # the input as a user reads it (CSV: its column types inferred as rec-score's are)
    table = pq.read_table(inp) if fmt == "parquet" else pacsv.read_csv(inp)
    got_table = model.predict(table)
    assert got_table.equals(written)
    frame = pd.read_parquet(inp) if fmt == "parquet" else pd.read_csv(inp)
    got = model.predict(frame)
    assert isinstance(got, pd.DataFrame) and list(got.columns) == written.column_names
    np.testing.assert_array_equal(
        bits(got.predicted_rating.to_numpy()), bits(written.column("predicted_rating").to_numpy())
    )
    assert got.cold_start.tolist() == written.column("cold_start").to_pylist()
    assert got.note.tolist() == written.column("note").to_pylist()
    assert got.user_id.dtype == np.int64 and got.index.equals(frame.index)
    batch = model.predict(table.to_batches()[0])
    assert isinstance(batch, pa.RecordBatch) and batch.num_rows == table.to_batches()[0].num_rows


def test_predict_skip_keeps_the_index_of_the_rows_kept(fake) -> None:
    frame = pairs_with_extras(fake, 50, seed=2).to_pandas()
    frame.index = pd.RangeIndex(1000, 1050)
    got = load_model(fake.folder).predict(frame, on_unknown="skip")
    users_known = frame.user_id.isin(fake.user_ids) & frame.movie_id.isin(fake.movie_ids)
    assert got.index.tolist() == frame.index[users_known].tolist()
    assert not got.cold_start.any()


def test_recommend_equals_rec_score_all_movies_row_for_row(
    any_fake_catalog, run_cli, tmp_path: Path
) -> None:
    fake = any_fake_catalog
    rng = np.random.default_rng(3)
    users = np.r_[fake.user_ids, fake.user_ids[:3], [424242]]
    seen = pd.DataFrame(
        {"user_id": rng.choice(fake.user_ids, 80), "movie_id": rng.choice(fake.movie_ids, 80)}
    )
    users_path = write_table(tmp_path / "users.parquet", {"user_id": users})
    seen_path = write_table(tmp_path / "seen.parquet", seen)
    args = ["--all-movies", "--exclude", seen_path, "--top-k", "4", "--titles"]
    code, err = run_cli(
        users_path,
        tmp_path / "top.parquet",
        *args,
        "--batch-size",
        "40",
        "--artifacts",
        fake.folder,
        artifacts=False,
    )
    assert code == 0, err
    written = pq.read_table(tmp_path / "top.parquet")
    model = load_model(fake.folder, batch_size=40)
    got = model.recommend(list(users), k=4, exclude=pa.Table.from_pandas(seen), titles=True)
    assert isinstance(got, pa.Table) and got.equals(written)
    as_pandas = model.recommend(users, k=4, exclude=seen, titles=True)
    assert isinstance(as_pandas, pd.DataFrame)
    assert pa.Table.from_pandas(as_pandas, written.schema, preserve_index=False).equals(written)
    # without the catalog graph: every pair through the model, the same table
    pairs_only = Model(load_artifacts(fake.model_path, fake.mapping_path, use_catalog=False))
    assert pairs_only.recommend(users, k=4, exclude=seen, titles=True).equals(as_pandas)


def test_errors_speak_python(fake) -> None:
    model = load_model(fake.folder)
    frame = pd.DataFrame({"user": [1], "movie_id": [2]})
    with pytest.raises(DataError, match=r"data: no column 'user_id'.*user_col / movie_col"):
        model.predict(frame)
    with pytest.raises(UsageError, match="^on_unknown must be one of fallback, skip, error"):
        model.predict(frame, user_col="user", on_unknown="drop")
    with pytest.raises(DataError, match=r"on_unknown fallback or on_unknown skip"):
        model.predict(pd.DataFrame({"user_id": [1], "movie_id": [2]}), on_unknown="error")
    with pytest.raises(UsageError, match="^k must be at least 1, got 0"):
        model.recommend([1], k=0)
    with pytest.raises(DataError, match="users: expected .* got str"):
        model.recommend("10,20")
    with pytest.raises(UsageError, match="threads must be 0"):
        load_model(fake.folder, threads=-1)


# The API scores a pyarrow Table with pandas blocked (and counts import attempts), then
# prints the result's checksum; a pandas object is what brings pandas in.
BLOCKED = textwrap.dedent(
    """
    import json, sys

    attempts = []

    class BlockPandas:
        def find_spec(self, name, path=None, target=None):
            if name == "pandas" or name.startswith("pandas."):
                attempts.append(name)
                raise ImportError(f"{name} is blocked")
            return None

    sys.meta_path.insert(0, BlockPandas())
    import numpy as np
    import pyarrow.parquet as pq

    from movierec.serve_batch import load_model

    table = pq.read_table(sys.argv[2])
    attempts.clear()  # pyarrow's own reader probes for pandas; the API must not
    model = load_model(sys.argv[1])
    out = model.predict(table)
    recs = model.recommend(np.array([int(v) for v in sys.argv[3].split(",")]), k=3)
    print(json.dumps({"rows": out.num_rows, "recs": recs.num_rows, "attempts": attempts}))
    """
)


def test_the_api_needs_no_pandas_for_arrow(fake, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", pairs_with_extras(fake, 30, seed=4))
    users = ",".join(str(u) for u in fake.user_ids[:4])
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(fake.folder), str(inp), users],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got == {"rows": 30, "recs": 12, "attempts": []}
