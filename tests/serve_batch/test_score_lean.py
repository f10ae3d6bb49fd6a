"""rec-score never imports pandas, and its pandas-free Arrow <-> numpy conversions are exact."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.serve_batch._arrow import from_numpy, null_mask, strings_from_list, to_numpy
from movierec.serve_batch._sorting import sorted_unique
from tests.support import read_table, write_table

REPO = Path(__file__).resolve().parents[2]

# Blocks pandas and records every attempt to import it (pyarrow swallows the
# ImportError of its lazy probe, so a blocker alone would not notice one), then runs
# rec-score once per argv list and prints the exit codes and the attempts.
BLOCK_PANDAS_AND_RUN = textwrap.dedent(
    """
    import json, sys, traceback

    attempts = []

    class BlockPandas:
        def find_spec(self, name, path=None, target=None):
            if name == "pandas" or name.startswith("pandas."):
                attempts.append("".join(traceback.format_stack(limit=6)[:-1]))
                raise ImportError(f"{name} is blocked: rec-score must not import pandas")
            return None

    sys.meta_path.insert(0, BlockPandas())
    assert "pandas" not in sys.modules
    from movierec.serve_batch.cli import main

    codes = []
    for argv in json.loads(sys.argv[1]):
        sys.argv = ["rec-score", *argv]
        try:
            main()
        except SystemExit as exc:
            codes.append(exc.code)
    print(json.dumps({"codes": codes, "attempts": attempts}))
    """
)


def test_rec_score_never_imports_pandas(fake_catalog, tmp_path: Path) -> None:
    fake = fake_catalog
    rng = np.random.default_rng(3)
    n = 400
    users = np.r_[rng.choice(fake.user_ids, n - 2), [1, 2]]  # two unknown users
    movies = np.r_[rng.choice(fake.movie_ids, n - 2), [3, 3]]
    rating = rng.integers(1, 6, n).astype(np.float64)
    pairs = pa.table(
        {
            "user_id": users,
            "movie_id": movies,
            "rating": pa.array(np.where(np.arange(n) % 7 == 0, np.nan, rating), from_pandas=True),
            "note": [f"n{i}" for i in range(n)],
            "flag": np.arange(n) % 3 == 0,
        }
    )
    inputs = {ext: write_table(tmp_path / f"in{ext}", pairs) for ext in (".parquet", ".csv")}
    gz = write_table(tmp_path / "in.csv.gz", pairs)
    user_file = write_table(tmp_path / "users.parquet", {"user_id": fake.user_ids[:5]})
    art = ["--artifacts", str(fake.folder), "--quiet"]
    runs = [
        [str(inputs[".parquet"]), str(tmp_path / "out.parquet"), "--top-k", "3", "--titles", *art],
        [str(inputs[".csv"]), str(tmp_path / "out.csv"), "--top-k", "3", *art],
        [str(gz), str(tmp_path / "out.csv.gz"), "--unknown", "skip", *art],
        [str(user_file), str(tmp_path / "top.parquet"), "--all-movies", "--exclude", str(gz)]
        + ["--titles", *art],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_PANDAS_AND_RUN, json.dumps(runs)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 0, 0], proc.stderr
    assert result["attempts"] == [], "pandas was imported from:\n" + result["attempts"][0]

    expected, cold = fake.expected(users, movies)
    for name in ("out.parquet", "out.csv"):
        out = read_table(tmp_path / name)
        np.testing.assert_allclose(out["predicted_rating"].to_numpy(), expected, atol=1e-5)
        np.testing.assert_array_equal(out["cold_start"].to_numpy(), cold)
        assert out["note"].to_pylist() == pairs["note"].to_pylist()
    assert read_table(tmp_path / "out.csv.gz").num_rows == n - 2
    assert read_table(tmp_path / "top.parquet").num_rows > 0


def test_string_ids_never_import_pandas_either(fake_strings, tmp_path: Path) -> None:
    """String IDs under the model's own columns: pairs with a top-k table and titles
    (unknown IDs, CSV and Parquet), and catalog mode with exclusions."""
    fake = fake_strings
    users = fake.user_ids.tolist() + ["zz-new"]
    movies = fake.movie_ids.tolist() + ["tt9999999"]
    rng = np.random.default_rng(4)
    pairs = pa.table(
        {
            "customer_id": strings_from_list([users[i] for i in rng.integers(0, len(users), 300)]),
            "sku": strings_from_list([movies[i] for i in rng.integers(0, len(movies), 300)]),
        }
    )
    inp = write_table(tmp_path / "in.parquet", pairs)
    csv = write_table(tmp_path / "in.csv", pairs)
    who = write_table(tmp_path / "users.parquet", {"customer_id": strings_from_list(users)})
    art = ["--artifacts", str(fake.folder), "--quiet"]
    runs = [
        [str(inp), str(tmp_path / "out.parquet"), "--top-k", "3", "--titles", *art],
        [str(csv), str(tmp_path / "out.csv"), "--top-k", "2", "--unknown", "skip", *art],
        [str(who), str(tmp_path / "top.parquet"), "--all-movies", "--exclude", str(inp), *art],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_PANDAS_AND_RUN, json.dumps(runs)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 0], proc.stderr
    assert result["attempts"] == [], "pandas was imported from:\n" + result["attempts"][0]
    assert read_table(tmp_path / "top.parquet").column_names[:3] == ["customer_id", "rank", "sku"]


NUMERIC = [np.int8, np.int32, np.int64, np.uint8, np.uint64, np.float32, np.float64, np.bool_]


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(NUMERIC),
    n=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
    start=st.integers(0, 9),
    with_nulls=st.booleans(),
    chunks=st.integers(1, 3),
)
def test_to_numpy_equals_pyarrows_conversion(dtype, n, seed, start, with_nulls, chunks) -> None:
    rng = np.random.default_rng(seed)
    values = (rng.random(n) * 200).astype(dtype)
    nulls = rng.random(n) < 0.3 if with_nulls else None
    array = pa.array(values, mask=nulls)
    sliced = array.slice(min(start, n))  # a non-zero offset into the buffers
    parts = np.array_split(np.arange(len(sliced)), chunks)
    chunked = pa.chunked_array([sliced.slice(p[0], len(p)) for p in parts if len(p)], sliced.type)
    for column in (sliced, chunked):
        expected = column.to_numpy(zero_copy_only=False)  # pyarrow's own, through pandas
        np.testing.assert_array_equal(null_mask(column), column.is_null().to_numpy(False))
        if column.null_count and not np.issubdtype(dtype, np.floating):
            with pytest.raises(ValueError, match="null"):
                to_numpy(column)
            continue
        got = to_numpy(column)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, expected.astype(dtype))


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(NUMERIC), n=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_from_numpy_equals_pa_array(dtype, n, seed) -> None:
    values = (np.random.default_rng(seed).random(n) * 200).astype(dtype)
    got = from_numpy(values)
    assert got.equals(pa.array(values)), (got, pa.array(values))
    assert got.null_count == 0
    assert from_numpy(values[::2], np.float32).equals(pa.array(values[::2], pa.float32()))


def test_conversions_refuse_what_they_do_not_handle() -> None:
    with pytest.raises(TypeError, match="string"):
        to_numpy(pa.array(["1"]))
    with pytest.raises(TypeError, match="dtype"):
        from_numpy(np.array(["a"]))
    with pytest.raises(ValueError, match="1-D"):
        from_numpy(np.zeros((2, 2)))


@given(st.lists(st.text(max_size=12), max_size=30))
def test_strings_from_list_equals_pyarrow(values: list[str]) -> None:
    got = strings_from_list(values)
    got.validate(full=True)
    assert got.equals(pa.array(values, pa.string()))


@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50))
def test_sorted_unique_equals_numpy(values: list[int]) -> None:
    array = np.array(values, dtype=np.int64)
    np.testing.assert_array_equal(sorted_unique(array), np.unique(array))
