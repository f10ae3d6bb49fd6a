"""Synthetic MovieLens-like data with planted structure, written in the real file layouts.

Tests use these instead of the real data (whose license forbids committing it)::

    from tests.synthetic import make_ratings, write_ml100k

    data = make_ratings(seed=1)
    folder = write_ml100k(tmp_path / "ml-100k", data)

``data.ratings`` has the dtypes ``load_movielens`` returns (user_id/movie_id/timestamp
int64, rating float32), ``data.users`` and ``data.movies`` its side-table columns, so a
written folder loads back into equal frames.
"""

from __future__ import annotations

import csv
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ML100K_GENRES",
    "ML1M_AGES",
    "ML1M_OCCUPATIONS",
    "SyntheticData",
    "make_ratings",
    "write_csv_layout",
    "write_ml100k",
    "write_ml1m",
]

#: u.genre of MovieLens 100K, in flag order.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

#: u.occupation of MovieLens 100K.
ML100K_OCCUPATIONS = (
    "administrator",
    "artist",
    "doctor",
    "educator",
    "engineer",
    "entertainment",
    "executive",
    "healthcare",
    "homemaker",
    "lawyer",
    "librarian",
    "marketing",
    "none",
    "other",
    "programmer",
    "retired",
    "salesman",
    "scientist",
    "student",
    "technician",
    "writer",
)

#: users.dat occupation codes of MovieLens 1M (its README), code = position.
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)

#: users.dat age-group codes of MovieLens 1M; also plausible plain ages for ml-100k.
ML1M_AGES = (1, 18, 25, 35, 45, 50, 56)

# Occupations spelled the same in both releases, so users round-trip through either.
_SHARED_OCCUPATIONS = tuple(o for o in ML100K_OCCUPATIONS if o in ML1M_OCCUPATIONS)


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """Ratings with planted factors, plus user and movie side tables.

    rating = clip(round(global_mean + user_bias[u] + movie_bias[m]
                        + user_factors[u] . movie_factors[m] + noise))
    where ``u``/``m`` index ``users``/``movies`` rows.
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    movies: pd.DataFrame
    user_factors: np.ndarray = field(repr=False)
    movie_factors: np.ndarray = field(repr=False)
    user_bias: np.ndarray = field(repr=False)
    movie_bias: np.ndarray = field(repr=False)
    global_mean: float = 3.0
    half_stars: bool = False

    def expected_rating(self, user_id: np.ndarray, movie_id: np.ndarray) -> np.ndarray:
        """The noise-free planted score (not rounded or clipped) of raw ID pairs."""
        u = pd.Index(self.users["user_id"]).get_indexer(np.asarray(user_id))
        m = pd.Index(self.movies["movie_id"]).get_indexer(np.asarray(movie_id))
        if (u < 0).any() or (m < 0).any():
            raise KeyError("unknown user_id or movie_id")
        dot = (self.user_factors[u] * self.movie_factors[m]).sum(axis=1)
        return self.global_mean + self.user_bias[u] + self.movie_bias[m] + dot


def make_ratings(
    n_users: int = 60,
    n_movies: int = 80,
    n_ratings: int = 3000,
    rank: int = 3,
    seed: int = 0,
    half_stars: bool = False,
    noise: float = 0.3,
) -> SyntheticData:
    """Draw a synthetic rating set with a rank-``rank`` structure, seeded.

    Unique (user, movie) pairs; raw IDs are increasing but have gaps; ratings are
    whole stars 1..5, or half stars 0.5..5 with ``half_stars``; timestamps mostly
    increase in row order. Some titles hold commas, quotes or accents, and the last
    movie has no year, to exercise the parsers.
    """
    if n_users < 1 or n_movies < 1 or rank < 1:
        raise ValueError("n_users, n_movies and rank must be at least 1")
    if not 1 <= n_ratings <= n_users * n_movies:
        raise ValueError(f"n_ratings must be 1..{n_users * n_movies} (every pair at most once)")
    rng = np.random.default_rng(seed)

    user_ids = np.cumsum(rng.integers(1, 3, n_users)).astype(np.int64)  # 1, 2, 4, 5, 7...
    movie_ids = np.cumsum(rng.integers(1, 5, n_movies)).astype(np.int64)  # 1, 3, 7...
    scale = (0.8 / np.sqrt(rank)) ** 0.5  # the dot product has a std of about 0.8
    user_factors = rng.normal(0.0, scale, (n_users, rank))
    movie_factors = rng.normal(0.0, scale, (n_movies, rank))
    user_bias = rng.normal(0.0, 0.4, n_users)
    movie_bias = rng.normal(0.0, 0.5, n_movies)
    global_mean = 3.0

    pairs = rng.choice(n_users * n_movies, size=n_ratings, replace=False)
    u, m = np.divmod(pairs, n_movies)
    raw = (
        global_mean
        + user_bias[u]
        + movie_bias[m]
        + (user_factors[u] * movie_factors[m]).sum(axis=1)
        + rng.normal(0.0, noise, n_ratings)
    )
    if half_stars:
        rating = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
    else:
        rating = np.clip(np.round(raw), 1.0, 5.0)
    timestamp = 874_724_710 + np.cumsum(rng.integers(0, 600, n_ratings))
    timestamp = timestamp + rng.integers(-300, 300, n_ratings)  # "increasing-ish"
    ratings = pd.DataFrame(
        {
            "user_id": user_ids[u],
            "movie_id": movie_ids[m],
            "rating": rating.astype(np.float32),
            "timestamp": timestamp.astype(np.int64),
        }
    )

    users = pd.DataFrame(
        {
            "user_id": user_ids,
            "age": rng.choice(np.array(ML1M_AGES, dtype=np.int64), n_users),
            "gender": [str(g) for g in rng.choice(["M", "F"], n_users)],
            "occupation": [str(o) for o in rng.choice(_SHARED_OCCUPATIONS, n_users)],
        }
    )

    genre_pool = ML100K_GENRES[1:]  # "unknown" only marks movies without information
    titles: list[str] = []
    years: list[float] = []
    genres: list[str] = []
    for i, movie_id in enumerate(movie_ids):
        year = int(rng.integers(1930, 1999))
        name = f"Movie {movie_id}"
        if i % 7 == 3:
            name += ", The"  # a comma: quoted in movies.csv
        if i % 11 == 5:
            name += ': "Café" Cut'  # quotes and a latin-1 accent
        if i == n_movies - 1 and n_movies > 1:
            titles.append(name)  # no "(year)" suffix
            years.append(np.nan)
        else:
            titles.append(f"{name} ({year})")
            years.append(float(year))
        picks = rng.choice(len(genre_pool), size=int(rng.integers(1, 4)), replace=False)
        genres.append("|".join(genre_pool[j] for j in sorted(picks)))
    movies = pd.DataFrame(
        {
            "movie_id": movie_ids,
            "title": titles,
            "year": np.array(years, dtype=np.float64),
            "genres": genres,
        }
    )
    return SyntheticData(
        ratings=ratings,
        users=users,
        movies=movies,
        user_factors=user_factors,
        movie_factors=movie_factors,
        user_bias=user_bias,
        movie_bias=movie_bias,
        global_mean=global_mean,
        half_stars=half_stars,
    )


def _rating_text(value: float, csv_style: bool = False) -> str:
    """ "4" as the .data/.dat files write whole stars, "4.0" as ratings.csv does."""
    if csv_style:
        return f"{float(value):.1f}"
    return str(int(value)) if float(value).is_integer() else f"{float(value):g}"


def _zip_code(user_id: int) -> str:
    return f"{(user_id * 7919) % 100000:05d}"


def write_ml100k(folder: Path, data: SyntheticData) -> Path:
    """Write u.data, u.item, u.user, u.genre and u.occupation as MovieLens 100K does."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r = data.ratings
    lines = [
        f"{u}\t{m}\t{_rating_text(x)}\t{t}\n"
        for u, m, x, t in zip(r["user_id"], r["movie_id"], r["rating"], r["timestamp"], strict=True)
    ]
    (folder / "u.data").write_text("".join(lines), encoding="latin-1", newline="")

    items = []
    for movie_id, title, year, genre in zip(
        data.movies["movie_id"],
        data.movies["title"],
        data.movies["year"],
        data.movies["genres"],
        strict=True,
    ):
        date = "" if np.isnan(year) else f"01-Jan-{int(year)}"
        url = "http://us.imdb.com/M/title-exact?" + urllib.parse.quote(title, safe="(),:'")
        names = set(genre.split("|"))
        flags = "|".join("1" if g in names else "0" for g in ML100K_GENRES)
        items.append(f"{movie_id}|{title}|{date}||{url}|{flags}\n")
    (folder / "u.item").write_text("".join(items), encoding="latin-1", newline="")

    users = [
        f"{u}|{a}|{g}|{o}|{_zip_code(u)}\n"
        for u, a, g, o in zip(
            data.users["user_id"],
            data.users["age"],
            data.users["gender"],
            data.users["occupation"],
            strict=True,
        )
    ]
    (folder / "u.user").write_text("".join(users), encoding="latin-1", newline="")
    genre_lines = "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n"
    (folder / "u.genre").write_text(genre_lines, encoding="latin-1", newline="")
    occupations = "".join(f"{o}\n" for o in ML100K_OCCUPATIONS)
    (folder / "u.occupation").write_text(occupations, encoding="latin-1", newline="")
    return folder


def write_ml1m(folder: Path, data: SyntheticData, *, with_users: bool = True) -> Path:
    """Write ratings.dat, movies.dat and users.dat as MovieLens 1M does (latin-1).

    ``with_users=False`` leaves users.dat out, as MovieLens 10M does; the loader then
    allows half stars (0.5..5), so write half-star data that way.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r = data.ratings
    lines = [
        f"{u}::{m}::{_rating_text(x)}::{t}\n"
        for u, m, x, t in zip(r["user_id"], r["movie_id"], r["rating"], r["timestamp"], strict=True)
    ]
    (folder / "ratings.dat").write_text("".join(lines), encoding="latin-1", newline="")
    movies = [
        f"{m}::{t}::{g}\n"
        for m, t, g in zip(
            data.movies["movie_id"], data.movies["title"], data.movies["genres"], strict=True
        )
    ]
    (folder / "movies.dat").write_text("".join(movies), encoding="latin-1", newline="")
    if not with_users:
        return folder
    users = []
    for u, a, g, o in zip(
        data.users["user_id"],
        data.users["age"],
        data.users["gender"],
        data.users["occupation"],
        strict=True,
    ):
        users.append(f"{u}::{g}::{a}::{ML1M_OCCUPATIONS.index(o)}::{_zip_code(u)}\n")
    (folder / "users.dat").write_text("".join(users), encoding="latin-1", newline="")
    return folder


def write_csv_layout(folder: Path, data: SyntheticData) -> Path:
    """Write ratings.csv and movies.csv as ml-latest-small does (UTF-8, CRLF, quoting)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r = data.ratings
    with open(folder / "ratings.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(["userId", "movieId", "rating", "timestamp"])
        for u, m, x, t in zip(
            r["user_id"], r["movie_id"], r["rating"], r["timestamp"], strict=True
        ):
            writer.writerow([u, m, _rating_text(x, csv_style=True), t])
    with open(folder / "movies.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(["movieId", "title", "genres"])
        for m, t, g in zip(
            data.movies["movie_id"], data.movies["title"], data.movies["genres"], strict=True
        ):
            writer.writerow([m, t, g])
    return folder


#: The column names of the synthetic "own log" (as a service's export might call them).
LOG_COLUMNS = dict(user="customer_id", movie="sku", rating="stars", time="event_time")
#: The same columns as command-line options (``--user-col customer_id ...``).
LOG_ARGS = [arg for side, name in LOG_COLUMNS.items() for arg in (f"--{side}-col", name)]


def string_user(user_id) -> str:
    """The string form of a synthetic user ID: zero-padded, so it sorts like the integer."""
    return f"c-{int(user_id):05d}"


def string_movie(movie_id) -> str:
    return f"tt{int(movie_id):07d}"


def log_frame(data: SyntheticData, *, string_ids: bool = True) -> pd.DataFrame:
    """The ratings as a service's log: ``customer_id, sku, stars, event_time`` (a UTC
    timestamp in milliseconds, shown in Paris time), string IDs unless ``string_ids`` is
    False."""
    r = data.ratings
    users, movies = r["user_id"], r["movie_id"]
    if string_ids:
        users, movies = users.map(string_user), movies.map(string_movie)
    stamps = pd.to_datetime(r["timestamp"], unit="s", utc=True).dt.tz_convert("Europe/Paris")
    return pd.DataFrame(
        {
            LOG_COLUMNS["user"]: users.to_numpy(),
            LOG_COLUMNS["movie"]: movies.to_numpy(),
            LOG_COLUMNS["rating"]: r["rating"].to_numpy(np.float64),
            LOG_COLUMNS["time"]: stamps.astype("datetime64[ms, Europe/Paris]").to_numpy(),
        }
    )


def write_log(path: Path, frame: pd.DataFrame, parts: int = 1) -> Path:
    """``frame`` as a Parquet file (``.parquet``), a CSV file (``.csv`` / ``.csv.gz``) or,
    for a path without an extension, a folder of ``parts`` Parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.name.endswith((".csv", ".csv.gz")):
        frame.to_csv(path, index=False)
    else:
        path.mkdir(parents=True, exist_ok=True)
        bounds = np.linspace(0, len(frame), parts + 1).astype(int)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            pq.write_table(table.slice(a, b - a), path / f"part-{i:05d}.parquet")
        (path / "_SUCCESS").write_text("")
    return path


def write_items(path: Path, data: SyntheticData, *, string_ids: bool = True) -> Path:
    """The movies' titles as an items table ``sku, name`` (CSV or Parquet by extension)."""
    movies = data.movies["movie_id"]
    frame = pd.DataFrame(
        {
            LOG_COLUMNS["movie"]: movies.map(string_movie) if string_ids else movies,
            "name": data.movies["title"],
        }
    )
    write_log(path, frame)
    return path
