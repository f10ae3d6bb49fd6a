"""A ratings table of the user's own: Parquet file, folder of parts or CSV, with its own
column names, string or integer IDs, and its own time column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.serve_batch.errors import DataError
from movierec.train.data import Columns, load_ratings
from tests.synthetic import (
    LOG_COLUMNS,
    log_frame,
    make_ratings,
    string_movie,
    string_user,
    write_items,
    write_log,
)

COLUMNS = Columns(**LOG_COLUMNS, title="name")


@pytest.fixture(scope="module")
def data():
    return make_ratings(n_users=30, n_movies=40, n_ratings=500, seed=3)


def test_a_parquet_log_with_string_ids(data, tmp_path: Path) -> None:
    path = write_log(tmp_path / "log.parquet", log_frame(data))
    loaded = load_ratings(path, COLUMNS)
    vocab, users, movies = loaded.encoded
    assert loaded.layout == "parquet"
    assert loaded.fingerprint.startswith("parquet:sha256:")
    assert vocab.id_types == {"user": "string", "movie": "string"}
    assert list(vocab.user_ids) == sorted(map(string_user, data.ratings["user_id"].unique()))
    # the rows hold the log's pairs, in file order
    assert vocab.user_ids[users].tolist() == data.ratings["user_id"].map(string_user).tolist()
    assert vocab.movie_ids[movies].tolist() == data.ratings["movie_id"].map(string_movie).tolist()
    np.testing.assert_array_equal(loaded.ratings["rating"], data.ratings["rating"])
    np.testing.assert_array_equal(loaded.ratings["timestamp"], data.ratings["timestamp"])
    assert loaded.rating_scale == (data.ratings.rating.min(), data.ratings.rating.max())
    assert loaded.columns == COLUMNS
    # one Python string per distinct ID, not per row
    assert isinstance(loaded.ratings["user_id"].dtype, pd.CategoricalDtype)


def test_string_and_integer_ids_encode_alike(data, tmp_path: Path) -> None:
    """Zero-padded string IDs sort like their integers: the same rows, the same split."""
    as_text = load_ratings(write_log(tmp_path / "s.parquet", log_frame(data)), COLUMNS)
    as_int = load_ratings(
        write_log(tmp_path / "i.parquet", log_frame(data, string_ids=False)), COLUMNS
    )
    assert as_int.encoded[0].id_types == {"user": "int", "movie": "int"}
    for a, b in zip(as_text.encoded[1:], as_int.encoded[1:], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_folder_of_parts_reads_as_one_table(data, tmp_path: Path) -> None:
    one = load_ratings(write_log(tmp_path / "one.parquet", log_frame(data)), COLUMNS)
    folder = write_log(tmp_path / "parts", log_frame(data), parts=4)
    (folder / ".hidden.parquet").write_bytes(b"not parquet")  # skipped, as Spark's are
    many = load_ratings(folder, COLUMNS)
    assert many.layout == "parquet-folder"
    pd.testing.assert_frame_equal(one.ratings, many.ratings)
    assert one.fingerprint != many.fingerprint


def test_parts_must_agree_on_types(data, tmp_path: Path) -> None:
    folder = write_log(tmp_path / "parts", log_frame(data), parts=2)
    odd = log_frame(data).iloc[:10].assign(stars=lambda f: f.stars.astype(str))
    pq.write_table(pa.Table.from_pandas(odd, preserve_index=False), folder / "part-00009.parquet")
    with pytest.raises(
        DataError, match=r"part-00009.parquet: column 'stars' has type (large_)?string, but double"
    ):
        load_ratings(folder, COLUMNS)
    # widths and encodings may differ between parts: int32 and int64, string and large_string
    narrow = pa.Table.from_pandas(log_frame(data).iloc[:10], preserve_index=False)
    narrow = narrow.cast(
        pa.schema(
            [
                f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f
                for f in narrow.schema
            ]
        )
    )
    pq.write_table(narrow, folder / "part-00009.parquet")
    assert len(load_ratings(folder, COLUMNS).ratings) > 0


def test_a_csv_log_reads_integers_as_integers_and_keeps_text(data, tmp_path: Path) -> None:
    frame = log_frame(data, string_ids=False)
    frame["event_time"] = data.ratings["timestamp"].to_numpy()  # Unix seconds
    frame["sku"] = frame["sku"].map(lambda m: f"{m:03d}")  # leading zeros: text IDs
    path = write_log(tmp_path / "log.csv.gz", frame)
    loaded = load_ratings(path, COLUMNS)
    assert loaded.layout == "csv-file"
    assert loaded.encoded[0].id_types == {"user": "int", "movie": "string"}
    want = sorted(f"{m:03d}" for m in data.ratings["movie_id"].unique())
    assert list(loaded.encoded[0].movie_ids) == want  # "007" stays "007"
    np.testing.assert_array_equal(loaded.ratings["timestamp"], data.ratings["timestamp"])


@pytest.mark.parametrize(
    "times",
    [
        pa.array([1_700_000_000, 1_700_000_060], pa.int64()),
        pa.array([1_700_000_000_000, 1_700_000_060_999], pa.timestamp("ms", tz="Asia/Tokyo")),
        pa.array([1_700_000_000_000_000_000, 1_700_000_060_000_000_000], pa.timestamp("ns")),
        pa.array(["2023-11-14T22:13:20Z", "2023-11-14T23:14:20+01:00"]),
        pa.array(["2023-11-14 22:13:20", "2023-11-14 22:14:20.5"]),
        pa.array([1_700_000_000.25, 1_700_000_060.9]),
    ],
)
def test_times_of_any_type_become_unix_seconds(times: pa.Array, tmp_path: Path) -> None:
    table = pa.table(
        {"user_id": [1, 2], "movie_id": [3, 4], "rating": [4.0, 5.0], "timestamp": times}
    )
    pq.write_table(table, tmp_path / "t.parquet")
    loaded = load_ratings(tmp_path / "t.parquet")
    assert loaded.ratings["timestamp"].tolist() == [1_700_000_000, 1_700_000_060]


def test_dates_are_midnight_utc(tmp_path: Path) -> None:
    table = pa.table(
        {"user_id": [1], "movie_id": [3], "rating": [4], "day": pa.array([19675], pa.date32())}
    )
    pq.write_table(table, tmp_path / "t.parquet")
    loaded = load_ratings(tmp_path / "t.parquet", Columns(time="day"))
    assert loaded.ratings["timestamp"].tolist() == [19675 * 86400]


def test_a_rerating_keeps_the_latest_by_time_or_else_the_last_line(tmp_path: Path) -> None:
    table = pa.table(
        {
            "user_id": ["a", "a", "b", "a", "b"],
            "movie_id": ["x", "y", "x", "x", "x"],
            "rating": [1.0, 2.0, 3.0, 4.0, 5.0],
            "timestamp": [30, 10, 10, 20, 10],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    loaded = load_ratings(tmp_path / "t.parquet")
    assert loaded.duplicates_dropped == 2
    # (a, x): time 30 beats the later line of time 20; (b, x): a tie, the last line wins
    assert loaded.ratings["rating"].tolist() == [1.0, 2.0, 5.0]
    pq.write_table(table.drop_columns(["timestamp"]), tmp_path / "u.parquet")
    untimed = load_ratings(tmp_path / "u.parquet")
    assert not untimed.has_time and untimed.columns.time is None
    assert untimed.ratings["rating"].tolist() == [2.0, 4.0, 5.0]


def test_items_give_titles_keyed_by_the_movie_column(data, tmp_path: Path) -> None:
    path = write_log(tmp_path / "log.parquet", log_frame(data))
    items = write_items(tmp_path / "items.csv", data)
    loaded = load_ratings(path, COLUMNS, items=items)
    titles = dict(zip(loaded.movies["movie_id"], loaded.movies["title"], strict=True))
    first = data.movies.iloc[0]
    assert titles[string_movie(first["movie_id"])] == first["title"]
    with pytest.raises(DataError, match="holds text IDs, but the ratings' movie IDs are integers"):
        load_ratings(
            write_log(tmp_path / "i.parquet", log_frame(data, string_ids=False)),
            COLUMNS,
            items=items,
        )


def test_an_item_listed_twice_is_named(data, tmp_path: Path) -> None:
    path = write_log(tmp_path / "log.parquet", log_frame(data))
    items = tmp_path / "items.csv"
    items.write_text("sku,name\ntt0000001,A\ntt0000002,B\ntt0000001,C\n")
    with pytest.raises(DataError, match=r"movie 'tt0000001' .* listed twice, at rows 0 and 2"):
        load_ratings(path, COLUMNS, items=items)


def _table(tmp_path: Path, **columns) -> Path:
    base = {"user_id": ["a", "b", "c"], "movie_id": ["x", "y", "z"], "rating": [1.0, 2.0, 3.0]}
    base.update(columns)
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(base), path)
    return path


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            dict(user_id=["a", None, "c"]),
            r"column 'user_id' row 1 .*: expected a user ID, got a "
            r"null",
        ),
        (
            dict(movie_id=["x", "y", ""]),
            r"column 'movie_id' row 2 .*: expected a movie ID, got an "
            r"empty value",
        ),
        (
            dict(rating=["4", "four", "5"]),
            r"column 'rating' row 1 .*: expected a number \(the "
            r"rating\), got 'four'",
        ),
        (
            dict(rating=[1.0, float("inf"), 2.0]),
            r"column 'rating' row 1 .*: expected a finite "
            r"rating, got inf",
        ),
        (dict(rating=[1.0, 2.0, None]), r"column 'rating' row 2 .*: expected a rating, got a null"),
        (
            dict(timestamp=["2024-01-01", "yesterday", "2024-01-02"]),
            r"column 'timestamp' row 1 "
            r".*: expected a time .*, got 'yesterday'",
        ),
        (dict(user_id=[1.5, 2.0, 3.0]), r"column 'user_id' row 0 .*: expected an integer user ID"),
        (
            dict(movie_id=[[1], [2], [3]]),
            r"column 'movie_id': expected movie IDs \(integers or "
            r"text\), but the column has type list",
        ),
    ],
)
def test_bad_values_are_named_by_file_column_and_row(tmp_path: Path, columns, message) -> None:
    path = _table(tmp_path, **columns)
    with pytest.raises(DataError, match=rf"{path}: {message}"):
        load_ratings(path)


def test_a_missing_column_lists_the_columns_present(data, tmp_path: Path) -> None:
    path = write_log(tmp_path / "log.parquet", log_frame(data))
    with pytest.raises(
        DataError,
        match=r"no column 'user_id' for the users; columns found: customer_id, sku, stars, "
        r"event_time",
    ):
        load_ratings(path)
    # a time column named by --time-col must be there; the default one may be absent
    with pytest.raises(DataError, match="no column 'when' for the times"):
        load_ratings(path, Columns(**{**LOG_COLUMNS, "time": "when"}))
    with pytest.raises(DataError, match="no column 'timestamp' for the times .*--split"):
        load_ratings(path, Columns(user="customer_id", movie="sku", rating="stars"), need_time=True)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "holds no data files"),
        (lambda p: (p.parent / "r.json").write_text("{}"), "unsupported ratings file type"),
        (lambda p: (p.parent / "r.csv").write_text(""), "is empty"),
        (lambda p: (p.parent / "r.csv").write_text("user_id,movie_id,rating\n"), "no ratings"),
        (lambda p: (p.parent / "r.parquet").write_text("nope"), "not a readable Parquet file"),
    ],
)
def test_sources_that_hold_no_ratings(tmp_path: Path, make, message) -> None:
    target = tmp_path / "r"
    make(target)
    found = [p for p in tmp_path.iterdir()]
    with pytest.raises(DataError, match=message):
        load_ratings(found[0])


def test_two_roles_may_not_share_a_column() -> None:
    from movierec.serve_batch.errors import UsageError

    with pytest.raises(UsageError, match="user_col and movie_col are both 'id'"):
        Columns(user="id", movie="id")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s),
        min_size=1,
        max_size=12,
        unique=True,
    )
)
def test_any_string_ids_round_trip(tmp_path_factory, ids: list[str]) -> None:
    folder = tmp_path_factory.mktemp("ids")
    users = [ids[i % len(ids)] for i in range(2 * len(ids))]
    movies = [ids[(i * 7 + 3) % len(ids)] + "#" + str(i) for i in range(2 * len(ids))]
    pq.write_table(
        pa.table({"user_id": users, "movie_id": movies, "rating": [3.0] * len(users)}),
        folder / "t.parquet",
    )
    loaded = load_ratings(folder / "t.parquet")
    vocab, u, m = loaded.encoded
    assert list(vocab.user_ids) == sorted(set(users))  # code point order, as Arrow sorts
    assert vocab.user_ids[u].tolist() == users
    assert vocab.movie_ids[m].tolist() == movies
