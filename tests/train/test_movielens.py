"""load_movielens on synthetic folders of every layout, bad data, and the real data."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movierec.serve_batch.errors import DataError
from movierec.train.data import ML100K_SHA256, RatingsData, load_movielens
from tests.synthetic import (
    SyntheticData,
    make_ratings,
    write_csv_layout,
    write_ml1m,
    write_ml100k,
)

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

RATING_DTYPES = {
    "user_id": np.dtype("int64"),
    "movie_id": np.dtype("int64"),
    "rating": np.dtype("float32"),
    "timestamp": np.dtype("int64"),
}


def write(layout: str, folder: Path, data: SyntheticData) -> Path:
    """Write ``data`` in ``layout``; "ml-10m" is the ``::`` layout without users.dat."""
    if layout == "ml-100k":
        return write_ml100k(folder, data)
    if layout == "ml-1m":
        return write_ml1m(folder, data)
    if layout == "ml-10m":
        return write_ml1m(folder, data, with_users=False)
    return write_csv_layout(folder, data)


def set_line(path: Path, lineno: int, text: str | None) -> None:
    """Replace 1-based line ``lineno`` of ``path`` (None deletes it), keeping its ending."""
    lines = path.read_bytes().splitlines(keepends=True)
    ending = b"\r\n" if lines[lineno - 1].endswith(b"\r\n") else b"\n"
    lines[lineno - 1] = b"" if text is None else text.encode("latin-1") + ending
    path.write_bytes(b"".join(lines))


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return make_ratings(n_users=40, n_movies=50, n_ratings=600, seed=3)


@pytest.fixture(scope="module")
def half_data() -> SyntheticData:
    return make_ratings(n_users=40, n_movies=50, n_ratings=600, seed=4, half_stars=True)


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["ml-100k", "ml-1m", "csv"])
def test_round_trip(layout: str, data: SyntheticData, tmp_path: Path) -> None:
    folder = write(layout, tmp_path / layout, data)
    loaded = load_movielens(folder)

    assert isinstance(loaded, RatingsData)
    assert loaded.layout == layout
    assert loaded.path == folder
    assert dict(loaded.ratings.dtypes) == RATING_DTYPES
    pd.testing.assert_frame_equal(loaded.ratings, data.ratings)
    pd.testing.assert_frame_equal(loaded.movies, data.movies)
    if layout == "csv":
        assert loaded.users is None
    else:
        pd.testing.assert_frame_equal(loaded.users, data.users)
        assert loaded.users["age"].dtype == np.int64
    assert loaded.movies["year"].isna().sum() == 1  # the synthetic title without a year
    assert loaded.rating_scale == (1.0, 5.0)


@pytest.mark.parametrize("layout", ["ml-10m", "csv"])
def test_half_stars(layout: str, half_data: SyntheticData, tmp_path: Path) -> None:
    loaded = load_movielens(write(layout, tmp_path / layout, half_data))
    pd.testing.assert_frame_equal(loaded.ratings, half_data.ratings)
    assert loaded.users is None
    assert loaded.rating_scale == (0.5, 5.0)
    assert set(loaded.ratings["rating"]) > {0.5, 1.5, 4.5}


@pytest.mark.parametrize("layout", ["ml-100k", "ml-1m", "csv"])
def test_rating_scale_is_read_from_the_data(
    layout: str, data: SyntheticData, tmp_path: Path
) -> None:
    ratings = data.ratings[data.ratings["rating"].between(2, 4)].reset_index(drop=True)
    folder = write(layout, tmp_path, dataclasses.replace(data, ratings=ratings))
    assert load_movielens(folder).rating_scale == (2.0, 4.0)


def test_accepts_a_string_path(data: SyntheticData, tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path, data)
    assert load_movielens(str(folder)).path == folder


def test_side_files_are_optional(data: SyntheticData, tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "a", data)
    (folder / "u.genre").unlink()  # the standard genre names are used
    pd.testing.assert_frame_equal(load_movielens(folder).movies, data.movies)
    for name in ("u.item", "u.user", "u.occupation"):
        (folder / name).unlink()
    loaded = load_movielens(folder)
    assert loaded.users is None and loaded.movies is None
    assert len(loaded.ratings) == len(data.ratings)

    folder = write_ml1m(tmp_path / "b", data)
    (folder / "movies.dat").unlink()
    assert load_movielens(folder).movies is None
    folder = write_csv_layout(tmp_path / "c", data)
    (folder / "movies.csv").unlink()
    assert load_movielens(folder).movies is None


def test_movies_csv_without_genres(data: SyntheticData, tmp_path: Path) -> None:
    """A catalog with no genres may leave the column out: titles load, genres are empty."""
    folder = write_csv_layout(tmp_path, data)
    full = pd.read_csv(folder / "movies.csv")
    full[["movieId", "title"]].to_csv(folder / "movies.csv", index=False)
    movies = load_movielens(folder).movies
    assert movies["title"].tolist() == full["title"].tolist()
    assert (movies["genres"] == "").all()
    set_line(folder / "movies.csv", 3, "3,Heat (1995),Action")
    with pytest.raises(DataError, match=r"movies\.csv line 3: expected 2 comma-separated"):
        load_movielens(folder)


def test_utf8_movies_dat(data: SyntheticData, tmp_path: Path) -> None:
    """ml-1m's movies.dat is latin-1; later ``::`` releases write UTF-8."""
    folder = write_ml1m(tmp_path, data)
    movies = folder / "movies.dat"
    movies.write_text(movies.read_text(encoding="latin-1"), encoding="utf-8")
    loaded = load_movielens(folder)
    pd.testing.assert_frame_equal(loaded.movies, data.movies)
    assert loaded.movies["title"].str.contains("Café").any()


def test_ml1m_codes_become_names(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n")
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (folder / "movies.dat").write_bytes(
        b"1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        b"2::Mis\xe9rables, Les (1995)::Drama|Musical\n"
    )
    loaded = load_movielens(folder)
    assert loaded.users.to_dict("list") == {
        "user_id": [1, 2],
        "age": [1, 56],
        "gender": ["F", "M"],
        "occupation": ["K-12 student", "self-employed"],
    }
    assert loaded.movies["title"].tolist()[1] == "Misérables, Les (1995)"
    assert loaded.movies["year"].tolist() == [1975.0, 1995.0]


def test_a_rerated_pair_keeps_its_latest_rating(data: SyntheticData, tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path, data)
    lines = (folder / "u.data").read_text().splitlines()
    user, movie, rating, stamp = lines[0].split("\t")
    other = "1" if rating != "1" else "2"
    user2, movie2, _, stamp2 = lines[1].split("\t")
    with open(folder / "u.data", "a") as f:
        f.write(f"{user}\t{movie}\t{other}\t{int(stamp) + 10}\n")  # re-rated later
        f.write(f"{user2}\t{movie2}\t5\t{int(stamp2) - 10}\n")  # an older rating, listed last
    loaded = load_movielens(folder)
    ratings = loaded.ratings
    assert len(ratings) == len(data.ratings)
    assert loaded.duplicates_dropped == 2
    assert not ratings.duplicated(["user_id", "movie_id"]).any()
    first = ratings[(ratings.user_id == int(user)) & (ratings.movie_id == int(movie))]
    assert first.rating.tolist() == [float(other)]
    second = ratings[(ratings.user_id == int(user2)) & (ratings.movie_id == int(movie2))]
    assert second.timestamp.tolist() == [int(stamp2)]  # the newer one, though listed first
    # file order otherwise: the first line gave way to the re-rating at the end
    stamps = [int(x.split("\t")[3]) for x in lines[1:]] + [int(stamp) + 10]
    assert ratings.timestamp.tolist() == stamps


def test_blank_lines_are_skipped(data: SyntheticData, tmp_path: Path) -> None:
    folder = write_csv_layout(tmp_path, data)
    text = (folder / "ratings.csv").read_text()
    (folder / "ratings.csv").write_text(text.replace("\r\n", "\r\n\r\n", 3) + "\r\n")
    pd.testing.assert_frame_equal(load_movielens(folder).ratings, data.ratings)


def test_data_is_frozen(data: SyntheticData, tmp_path: Path) -> None:
    loaded = load_movielens(write_ml100k(tmp_path, data))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.layout = "csv"  # type: ignore[misc]
    assert "fingerprint=" in repr(loaded) and "rows x" not in repr(loaded)  # no frame


# --- fingerprint --------------------------------------------------------------------------


def test_fingerprint(data: SyntheticData, tmp_path: Path) -> None:
    one = load_movielens(write_ml100k(tmp_path / "one", data))
    two = load_movielens(write_ml100k(tmp_path / "two", data))
    digest = hashlib.sha256((tmp_path / "one" / "u.data").read_bytes()).hexdigest()
    assert one.fingerprint == two.fingerprint == f"ml-100k:sha256:{digest}"

    (tmp_path / "two" / "u.item").unlink()  # side files do not count
    assert load_movielens(tmp_path / "two").fingerprint == one.fingerprint

    ratings = data.ratings.copy()
    ratings.loc[0, "rating"] = 6 - ratings.loc[0, "rating"] if ratings.loc[0, "rating"] != 3 else 4
    changed = dataclasses.replace(data, ratings=ratings)
    three = load_movielens(write_ml100k(tmp_path / "three", changed))
    assert three.fingerprint != one.fingerprint

    csv = load_movielens(write_csv_layout(tmp_path / "csv", data))
    assert re.fullmatch(r"csv:sha256:[0-9a-f]{64}", csv.fingerprint)


# --- layout detection ---------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"does not exist; expected a folder holding one of: u\.data"
    ):
        load_movielens(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    (tmp_path / "ml-100k.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"ml-100k\.zip is a file \(unzip it first\)"):
        load_movielens(tmp_path / "ml-100k.zip")


def test_no_ratings_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(
        DataError, match=r"No MovieLens ratings file .*u\.data .*ratings\.dat .*ratings\.csv"
    ):
        load_movielens(tmp_path)


def test_nested_folder_hint(data: SyntheticData, tmp_path: Path) -> None:
    write_ml100k(tmp_path / "ml-100k", data)
    with pytest.raises(DataError, match=r"subfolder ml-100k/ holds one: pass that folder"):
        load_movielens(tmp_path)


@pytest.mark.parametrize(
    ("writer", "ratings_file", "side"),
    [
        (write_ml100k, "u.data", "u.item"),
        (write_ml1m, "ratings.dat", "movies.dat"),
        (write_csv_layout, "ratings.csv", "movies.csv"),
    ],
)
def test_missing_ratings_file(
    writer, ratings_file: str, side: str, data: SyntheticData, tmp_path: Path
) -> None:
    folder = writer(tmp_path, data)
    (folder / ratings_file).unlink()
    pattern = rf"{re.escape(ratings_file)} not found: .*it has {re.escape(side)}"
    with pytest.raises(DataError, match=pattern):
        load_movielens(folder)


def test_more_than_one_layout(data: SyntheticData, tmp_path: Path) -> None:
    write_ml100k(tmp_path, data)
    write_csv_layout(tmp_path, data)
    with pytest.raises(
        DataError, match=r"more than one MovieLens layout \(u\.data, ratings\.csv\)"
    ):
        load_movielens(tmp_path)


# --- bad ratings ------------------------------------------------------------------------

BAD_RATINGS = [
    # (layout, line, replacement, expected message)
    (
        "ml-100k",
        17,
        "1\t2\t3",
        r"u\.data line 17: expected 4 tab-separated fields "
        r"\(user_id, movie_id, rating, timestamp\), found 3\.",
    ),
    ("ml-100k", 5, "1\t2\tfour\t881250949", r"u\.data line 5: rating 'four' is not a number"),
    ("ml-100k", 9, "x1\t2\t3\t881250949", r"u\.data line 9: user_id 'x1' is not an integer"),
    ("ml-100k", 9, "1\t2.5\t3\t881250949", r"u\.data line 9: movie_id '2\.5' is not an integer"),
    ("ml-100k", 3, "1\t2\t6\t881250949", r"u\.data line 3: rating 6 is outside .* 1\.\.5"),
    ("ml-100k", 3, "1\t2\t0.5\t881250949", r"u\.data line 3: rating 0\.5 is outside"),
    (
        "ml-100k",
        4,
        "1\t2\t3.3\t881250949",
        r"u\.data line 4: rating 3\.3 is not a multiple of 0\.5",
    ),
    ("ml-100k", 4, "1\t\t3\t881250949", r"u\.data line 4: movie_id is empty"),
    ("ml-100k", 4, "99999999999999999999\t2\t3\t1", r"u\.data line 4: user_id 9+ does not fit in"),
    ("ml-100k", 4, "1\t2\t3\tyesterday", r"u\.data line 4: timestamp 'yesterday' is not an"),
    ("ml-100k", 600, "1 2 3 4", r"u\.data line 600: expected 4 tab-separated fields .*found 1"),
    (
        "ml-1m",
        2,
        "1::2::3",
        r"ratings\.dat line 2: expected 4 '::'-separated fields "
        r"\(UserID, MovieID, Rating, Timestamp\), found 3",
    ),
    ("ml-1m", 8, "1::2:3::4::5", r"ratings\.dat line 8: MovieID '2:3' is not an integer"),
    ("ml-1m", 8, "1:::2::3::4", r"ratings\.dat line 8: MovieID ':2' is not an integer"),
    ("ml-1m", 8, "1::x::3::4", r"ratings\.dat line 8: MovieID 'x' is not an integer"),
    ("ml-1m", 8, "1::2::five::4", r"ratings\.dat line 8: Rating 'five' is not a number"),
    ("ml-1m", 8, "1::2::0.5::4", r"ratings\.dat line 8: Rating 0\.5 is outside .* 1\.\.5"),
    ("ml-10m", 8, "1::2::0::4", r"ratings\.dat line 8: Rating 0 is outside .* 0\.5\.\.5"),
    ("ml-10m", 8, "1::2::4.25::4", r"ratings\.dat line 8: Rating 4\.25 is not a multiple of 0\.5"),
    (
        "csv",
        10,
        "1,2,3.5",
        r"ratings\.csv line 10: expected 4 comma-separated fields "
        r"\(userId, movieId, rating, timestamp\), found 3",
    ),
    ("csv", 2, "1,2,5.5,964982703", r"ratings\.csv line 2: rating 5\.5 is outside .* 0\.5\.\.5"),
    ("csv", 2, "1,2,nan,964982703", r"ratings\.csv line 2: rating 'nan' is not a number"),
    ("csv", 7, "u7,2,3.0,964982703", r"ratings\.csv line 7: userId 'u7' is not an integer"),
    ("csv", 601, "1,2,-1.0,964982703", r"ratings\.csv line 601: rating -1\.0 is outside"),
    (
        "csv",
        1,
        "user,movie,rating,timestamp",
        r"ratings\.csv line 1: expected the header userId,movieId,rating,timestamp",
    ),
]


@pytest.mark.parametrize(("layout", "lineno", "text", "message"), BAD_RATINGS)
def test_bad_ratings(
    layout: str,
    lineno: int,
    text: str,
    message: str,
    data: SyntheticData,
    half_data: SyntheticData,
    tmp_path: Path,
) -> None:
    source = half_data if layout == "ml-10m" else data
    folder = write(layout, tmp_path, source)
    ratings_file = {"ml-100k": "u.data", "csv": "ratings.csv"}.get(layout, "ratings.dat")
    set_line(folder / ratings_file, lineno, text)
    with pytest.raises(DataError, match=message) as info:
        load_movielens(folder)
    assert str(folder / ratings_file) in str(info.value)
    assert "\n" not in str(info.value)


def test_line_numbers_count_blank_lines_and_crlf(data: SyntheticData, tmp_path: Path) -> None:
    folder = write_csv_layout(tmp_path, data)
    path = folder / "ratings.csv"
    set_line(path, 3, "")  # a blank line: skipped, but still counted
    set_line(path, 12, "1,2,9.0,964982703")
    with pytest.raises(DataError, match=r"ratings\.csv line 12: rating 9\.0 is outside"):
        load_movielens(folder)


def test_bad_line_deep_in_a_large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bad line sits many scan blocks in: the message still names the right line."""
    monkeypatch.setattr("movierec.train.data._parse._SCAN_BLOCK", 4096)  # ~200 lines per block
    big = make_ratings(n_users=100, n_movies=100, n_ratings=6_000, seed=9)
    folder = write_ml1m(tmp_path / "a", big)
    set_line(folder / "ratings.dat", 5_123, "17::4::3")
    with pytest.raises(DataError, match=r"ratings\.dat line 5123: expected 4 .*found 3"):
        load_movielens(folder)
    folder = write_csv_layout(tmp_path / "b", big)
    set_line(folder / "ratings.csv", 4_001, "17,4,7.0,1")
    set_line(folder / "ratings.csv", 4_002, "17,4,8.0,1")
    with pytest.raises(DataError, match=r"ratings\.csv line 4001: rating 7\.0 is outside"):
        load_movielens(folder)


def test_empty_ratings_files(data: SyntheticData, tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "a", data)
    (folder / "u.data").write_bytes(b"")
    with pytest.raises(DataError, match=r"u\.data is empty; expected tab-separated lines"):
        load_movielens(folder)
    (folder / "u.data").write_bytes(b"\n\n  \n")
    with pytest.raises(DataError, match=r"u\.data is empty"):
        load_movielens(folder)
    folder = write_csv_layout(tmp_path / "b", data)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\r\n")
    with pytest.raises(DataError, match=r"ratings\.csv has a header but no ratings"):
        load_movielens(folder)


# --- bad side files -----------------------------------------------------------------------

BAD_SIDE_FILES = [
    # (layout, file, line, replacement, expected message)
    ("ml-100k", "u.item", 3, "3|Movie 3 (1990)|01-Jan-1990", r"u\.item line 3: expected 24 '\|'"),
    ("ml-100k", "u.item", 4, "x|T (1990)|||u" + "|0" * 19, r"u\.item line 4: movie id 'x' is not"),
    ("ml-100k", "u.item", 4, "9994|T (1990)|||u" + "|2" * 19, r"u\.item line 4: genre flag '2'"),
    (
        "ml-100k",
        "u.user",
        2,
        "9992|53|X|other|94043",
        r"u\.user line 2: gender 'X' is not 'M' or 'F'",
    ),
    (
        "ml-100k",
        "u.user",
        2,
        "9992|old|F|other|94043",
        r"u\.user line 2: age 'old' is not an integer",
    ),
    ("ml-100k", "u.user", 5, "5|33|F", r"u\.user line 5: expected 5 '\|'-separated fields"),
    ("ml-100k", "u.genre", 2, "Action", r"u\.genre line 2: expected 2 '\|'-separated fields"),
    ("ml-1m", "users.dat", 4, "9::F::25::99::55117", r"users\.dat line 4: Occupation code 99"),
    ("ml-1m", "users.dat", 4, "9::F::25", r"users\.dat line 4: expected 5 '::'-separated"),
    ("ml-1m", "movies.dat", 6, "6 Heat (1995) Action", r"movies\.dat line 6: expected 3 '::'"),
    ("ml-1m", "movies.dat", 6, "six::Heat (1995)::Action", r"movies\.dat line 6: MovieID 'six'"),
    ("csv", "movies.csv", 3, "abc,Heat (1995),Action", r"movies\.csv line 3: movieId 'abc' is not"),
    ("csv", "movies.csv", 3, "3,Heat (1995)", r"movies\.csv line 3: expected 3 comma-separated"),
    ("csv", "movies.csv", 1, "id,title,genres", r"movies\.csv line 1: expected the header"),
]


@pytest.mark.parametrize(("layout", "name", "lineno", "text", "message"), BAD_SIDE_FILES)
def test_bad_side_files(
    layout: str,
    name: str,
    lineno: int,
    text: str,
    message: str,
    data: SyntheticData,
    tmp_path: Path,
) -> None:
    folder = write(layout, tmp_path, data)
    set_line(folder / name, lineno, text)
    with pytest.raises(DataError, match=message):
        load_movielens(folder)


def test_duplicate_movie_in_side_file(data: SyntheticData, tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path, data)
    first = (folder / "u.item").read_text(encoding="latin-1").splitlines()[0]
    set_line(folder / "u.item", 5, first)
    movie_id = first.split("|")[0]
    with pytest.raises(
        DataError, match=rf"u\.item line 5: movie id {movie_id} already appeared on line 1"
    ):
        load_movielens(folder)


def test_empty_and_undecodable_side_files(data: SyntheticData, tmp_path: Path) -> None:
    folder = write_csv_layout(tmp_path / "a", data)
    (folder / "movies.csv").write_bytes(b"movieId,title,genres\r\n1,Caf\xe9 (1990),Drama\r\n")
    with pytest.raises(DataError, match=r"movies\.csv line 2: not valid UTF-8 text"):
        load_movielens(folder)
    folder = write_ml100k(tmp_path / "b", data)
    (folder / "u.user").write_bytes(b"")
    with pytest.raises(DataError, match=r"u\.user is empty"):
        load_movielens(folder)


# --- property -----------------------------------------------------------------------------


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 12),
    n_movies=st.integers(1, 12),
    fraction=st.floats(0.05, 1.0),
    layout=st.sampled_from(["ml-100k", "ml-1m", "ml-10m", "csv"]),
)
def test_any_synthetic_data_round_trips(
    seed: int, n_users: int, n_movies: int, fraction: float, layout: str
) -> None:
    n_ratings = max(1, int(fraction * n_users * n_movies))
    half = layout in ("ml-10m", "csv")
    data = make_ratings(n_users, n_movies, n_ratings, rank=2, seed=seed, half_stars=half)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_movielens(write(layout, Path(tmp), data))
    pd.testing.assert_frame_equal(loaded.ratings, data.ratings)
    pd.testing.assert_frame_equal(loaded.movies, data.movies)
    ratings = data.ratings["rating"]
    assert loaded.rating_scale == (float(ratings.min()), float(ratings.max()))


# --- real data ------------------------------------------------------------------------


def real_folder(name: str) -> Path:
    folder = REAL_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real MovieLens data not available at {folder}")
    return folder


@pytest.mark.realdata
def test_real_ml100k() -> None:
    folder = real_folder("ml-100k")
    loaded = load_movielens(folder)
    assert loaded.layout == "ml-100k"
    assert len(loaded.ratings) == 100_000
    assert loaded.ratings["user_id"].nunique() == 943
    assert loaded.ratings["movie_id"].nunique() == 1_682
    assert len(loaded.users) == 943 and len(loaded.movies) == 1_682
    assert loaded.rating_scale == (1.0, 5.0)
    assert dict(loaded.ratings.dtypes) == RATING_DTYPES
    for name, digest in ML100K_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert loaded.fingerprint == f"ml-100k:sha256:{ML100K_SHA256['u.data']}"
    toy_story = loaded.movies.iloc[0]
    assert (toy_story["title"], toy_story["year"]) == ("Toy Story (1995)", 1995.0)
    assert toy_story["genres"] == "Animation|Children's|Comedy"
    assert loaded.users.iloc[0].tolist() == [1, 24, "M", "technician"]


@pytest.mark.realdata
def test_real_ml_latest_small() -> None:
    loaded = load_movielens(real_folder("ml-latest-small"))
    assert loaded.layout == "csv"
    # This copy holds 100,896 ratings by 611 users (its README.txt says 100,836 by 610).
    assert len(loaded.ratings) == 100_896
    assert loaded.ratings["user_id"].nunique() == 611
    assert loaded.rating_scale == (0.5, 5.0)
    assert loaded.users is None
    assert len(loaded.movies) == 9_742
    assert loaded.movies.set_index("movie_id").loc[11, "title"] == "American President, The (1995)"
