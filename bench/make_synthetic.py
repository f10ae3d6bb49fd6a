"""A MovieLens-25M-shaped data set with a known best possible RMSE.

    python bench/make_synthetic.py OUTDIR --scale S --seed N

Writes ``OUTDIR/ratings.csv`` (userId,movieId,rating,timestamp; half stars 0.5-5.0,
sorted by user then movie as MovieLens ships it), ``OUTDIR/movies.csv``
(movieId,title,genres) and ``OUTDIR/generator.json``: the sizes, the parameters and
``noise_free_rmse``, the RMSE of the noise-free generating model on all ratings (the
best any model can do, up to the rounding to half stars).

Scale 1.0 is MovieLens 25M's size: 162,541 users, 59,047 movies, 25,000,095 ratings.
Users and ratings scale linearly; movies as ``sqrt(scale)`` (MovieLens' catalogue grows
more slowly than its users: scale 0.2 gives 32,508 users, 26,406 movies, 5,000,019
ratings). User activity is log-normal (at least 20 ratings each, as in MovieLens),
movie popularity Zipf-like, and ratings come from ``mu + b_u + b_i + p_u . q_i + noise``
with rank-8 factors, rounded to half stars and clipped to the scale. Everything is
vectorised numpy and deterministic for a seed (25M rows in about a minute).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

#: MovieLens 25M's sizes (scale 1.0).
FULL_USERS, FULL_MOVIES, FULL_RATINGS = 162_541, 59_047, 25_000_095
MIN_PER_USER = 20
HALF_STARS = [f"{v / 2:.1f}" for v in range(1, 11)]
GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Drama",
    "Horror",
    "Romance",
    "Sci-Fi",
]


@dataclass(frozen=True)
class Params:
    """The generating model (defaults give a MovieLens-like rating spread of about 1.0)."""

    rank: int = 8
    mean: float = 3.5
    user_bias_sd: float = 0.4
    movie_bias_sd: float = 0.4
    #: Movie bias rises with popularity (log count), as in MovieLens.
    popularity_bias: float = 0.08
    factor_sd: float = 0.42  # per latent dimension; p.q has sd rank**0.5 * factor_sd**2
    noise_sd: float = 0.8
    #: Log-normal user activity: sigma of log(count) before the floor of 20.
    activity_sigma: float = 1.1
    #: Zipf exponent of movie popularity and the rank offset that flattens its head.
    zipf: float = 1.05
    zipf_offset: float = 30.0


def sizes(scale: float) -> tuple[int, int, int]:
    """``(users, movies, ratings)`` at ``scale`` (movies grow as sqrt(scale))."""
    return (
        max(round(FULL_USERS * scale), 2),
        max(round(FULL_MOVIES * scale**0.5), 2),
        max(round(FULL_RATINGS * scale), 4),
    )


def user_counts(rng: np.random.Generator, n_users: int, n_ratings: int, n_movies: int, p: Params):
    """Ratings per user: log-normal, at least ``MIN_PER_USER``, summing to ``n_ratings``."""
    floor = min(MIN_PER_USER, n_ratings // n_users, n_movies)
    cap = max(n_movies // 2, floor)
    raw = rng.lognormal(0.0, p.activity_sigma, n_users)
    extra = n_ratings - floor * n_users
    counts = floor + np.floor(raw / raw.sum() * extra).astype(np.int64)
    counts = np.minimum(counts, cap)
    # hand out what rounding and the cap left over, one rating at a time to random users
    short = n_ratings - int(counts.sum())
    while short > 0:
        room = np.flatnonzero(counts < cap)
        pick = rng.choice(room, min(short, room.size), replace=False)
        counts[pick] += 1
        short = n_ratings - int(counts.sum())
    return counts


def draw_pairs(
    rng: np.random.Generator, counts: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, movie) pairs, ``counts[u]`` per user, movies drawn by popularity.

    Drawn with replacement; a draw repeating an earlier one is dropped and the shortfall
    drawn again (only the shortfall: membership is a binary search in the sorted pairs
    kept so far). Draws are i.i.d., so keeping each user's first ones is a fair sample.
    """
    n_movies = popularity.size
    kept = np.zeros(0, np.int64)  # sorted keys user * n_movies + movie
    need = counts.astype(np.int64).copy()
    for _ in range(200):
        if not need.any():
            break
        cdf = np.cumsum(popularity / popularity.sum())
        cdf[-1] = 1.0
        users = np.repeat(np.arange(need.size, dtype=np.int64), need)
        keys = users * n_movies + np.searchsorted(cdf, rng.random(users.size), side="right")
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        fresh = np.ones(keys.size, bool)
        fresh[order[1:][ordered[1:] == ordered[:-1]]] = False  # repeats within this round
        if kept.size:
            pos = np.minimum(np.searchsorted(kept, keys), kept.size - 1)
            fresh &= kept[pos] != keys
        keys, users = keys[fresh], users[fresh]
        # still grouped by user, in draw order: keep the first need[u] of each user
        first = np.searchsorted(users, users, side="left")
        keys = keys[np.arange(keys.size) - first < need[users]]
        need -= np.bincount(keys // n_movies, minlength=need.size)
        kept = np.sort(np.concatenate([kept, keys]))
        # heavy users run out of popular movies: draw their rest more evenly
        popularity = np.sqrt(popularity)
    return kept // n_movies, kept % n_movies


def generate(scale: float, seed: int, p: Params = Params()) -> dict:
    """Every column of the data set, plus the noise-free ratings (all numpy arrays)."""
    rng = np.random.default_rng(seed)
    n_users, n_movies, n_ratings = sizes(scale)
    counts = user_counts(rng, n_users, n_ratings, n_movies, p)
    popularity = 1.0 / (np.arange(n_movies) + p.zipf_offset) ** p.zipf
    popularity = popularity[rng.permutation(n_movies)]  # popularity unrelated to the ID
    users, movies = draw_pairs(rng, counts, popularity)
    user_bias = rng.normal(0.0, p.user_bias_sd, n_users)
    log_pop = np.log(popularity / popularity.mean())
    movie_bias = rng.normal(0.0, p.movie_bias_sd, n_movies) + p.popularity_bias * log_pop
    user_f = rng.normal(0.0, p.factor_sd, (n_users, p.rank)).astype(np.float32)
    movie_f = rng.normal(0.0, p.factor_sd, (n_movies, p.rank)).astype(np.float32)
    clean = np.empty(users.size, np.float64)
    for s in range(0, users.size, 1 << 22):  # blocks keep the gathered factors small
        u, m = users[s : s + (1 << 22)], movies[s : s + (1 << 22)]
        clean[s : s + u.size] = (
            p.mean + user_bias[u] + movie_bias[m] + np.einsum("ij,ij->i", user_f[u], movie_f[m])
        )
    noisy = clean + rng.normal(0.0, p.noise_sd, clean.size)
    rating = np.clip(np.round(noisy * 2) / 2, 0.5, 5.0)
    best = np.clip(clean, 0.5, 5.0)
    # timestamps: each user rates over a span of days inside 1996-2019
    start = rng.integers(820_454_400, 1_560_000_000, n_users)
    timestamp = start[users] + rng.integers(0, 86_400 * 400, users.size)
    movie_ids = np.sort(rng.choice(np.arange(1, 4 * n_movies), n_movies, replace=False))
    return {
        "user_id": users + 1,
        "movie_id": movie_ids[movies],
        "rating": rating,
        "timestamp": timestamp,
        "clean": best,
        "movie_ids": movie_ids,
        "sizes": (n_users, n_movies, n_ratings),
        "counts": counts,
        "movie_counts": np.bincount(movies, minlength=n_movies),
    }


def movies_table(rng: np.random.Generator, movie_ids: np.ndarray) -> pa.Table:
    years = rng.integers(1920, 2020, movie_ids.size)
    n_genres = rng.integers(1, 4, movie_ids.size)
    picks = rng.integers(0, len(GENRES), (movie_ids.size, 3))
    genres = [
        "|".join(dict.fromkeys(GENRES[g] for g in row[:n]))
        for row, n in zip(picks.tolist(), n_genres.tolist(), strict=True)
    ]
    titles = [
        f"Synthetic movie {i} ({y})"
        for i, y in zip(movie_ids.tolist(), years.tolist(), strict=True)
    ]
    return pa.table({"movieId": movie_ids, "title": titles, "genres": genres})


def write(out: Path, scale: float, seed: int, p: Params = Params()) -> dict:
    """Generate and write the data set; return what ``generator.json`` holds."""
    started = time.perf_counter()
    g = generate(scale, seed, p)
    out.mkdir(parents=True, exist_ok=True)
    ratings = pa.table(
        {
            "userId": g["user_id"],
            "movieId": g["movie_id"],
            # one decimal as MovieLens writes it ("4.0", "3.5"): half stars -> labels
            "rating": pa.DictionaryArray.from_arrays(
                pa.array((g["rating"] * 2 - 1).astype(np.int8)), pa.array(HALF_STARS)
            ),
            "timestamp": g["timestamp"],
        }
    )
    _write_csv(out / "ratings.csv", ratings, quoting="none")
    _write_csv(out / "movies.csv", movies_table(np.random.default_rng(seed + 1), g["movie_ids"]))
    n_users, n_movies, n_ratings = g["sizes"]
    info = {
        "scale": scale,
        "seed": seed,
        "users": n_users,
        "movies": n_movies,
        "ratings": int(g["rating"].size),
        "noise_free_rmse": float(np.sqrt(np.mean((g["rating"] - g["clean"]) ** 2))),
        "rating_mean": float(g["rating"].mean()),
        "rating_sd": float(g["rating"].std()),
        "ratings_per_user": _quantiles(g["counts"]),
        "ratings_per_movie": _quantiles(g["movie_counts"]),
        "params": asdict(p),
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "generator.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _write_csv(path: Path, table: pa.Table, quoting: str = "needed") -> None:
    """pyarrow's writer with MovieLens' unquoted header line."""
    with path.open("wb") as f:
        f.write((",".join(table.column_names) + "\n").encode())
        options = pacsv.WriteOptions(include_header=False, quoting_style=quoting)
        pacsv.write_csv(table, f, write_options=options)


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    q = np.percentile(counts, [50, 90, 99])
    return {
        "min": int(counts.min()),
        "median": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "max": int(counts.max()),
        "mean": float(counts.mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--scale", type=float, default=0.01, help="1.0 = MovieLens 25M's size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 4:
        parser.error(f"--scale must be in (0, 4], got {args.scale}")
    info = write(args.outdir, args.scale, args.seed)
    print(
        f"{args.outdir}: {info['users']} users, {info['movies']} movies, {info['ratings']} "
        f"ratings in {info['seconds']} s; noise-free RMSE {info['noise_free_rmse']:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
