"""``load_movielens``: one entry point for the three MovieLens folder layouts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from movierec.train.data import _parse
from movierec.train.data._dataset import RatingsData, drop_repeats, release_arrow_memory
from movierec.train.data._layouts import ML1M, ML10M_SCALE, ML100K, detect_layout


def load_movielens(path: Path | str) -> RatingsData:
    """Read the MovieLens folder at ``path`` (ml-100k, ml-1m/ml-10m or CSV layout).

    The layout is detected from the ratings file present (``u.data``, ``ratings.dat``
    or ``ratings.csv``). Side files (movies, users) are optional. Raises ``DataError``
    naming the file, line and problem for anything malformed. A (user, movie) pair rated
    more than once keeps its latest rating (``drop_repeats``).
    """
    folder = Path(path).expanduser()
    layout = detect_layout(folder)
    scale = layout.scale
    if layout.name == ML1M and not (folder / "users.dat").is_file():
        scale = ML10M_SCALE  # ml-10m: half stars, and no users.dat
    ratings, digest = _parse.read_ratings(folder / layout.ratings_file, layout, scale)

    users: pd.DataFrame | None = None
    movies: pd.DataFrame | None = None
    if layout.name == ML100K:
        if (folder / "u.item").is_file():
            genre_file = folder / "u.genre"
            genres = (
                _parse.read_ml100k_genres(genre_file)
                if genre_file.is_file()
                else _parse.ML100K_GENRES
            )
            movies = _parse.read_ml100k_movies(folder / "u.item", genres)
        if (folder / "u.user").is_file():
            users = _parse.read_ml100k_users(folder / "u.user")
    elif layout.name == ML1M:
        if (folder / "movies.dat").is_file():
            movies = _parse.read_dat_movies(folder / "movies.dat")
        if (folder / "users.dat").is_file():
            users = _parse.read_dat_users(folder / "users.dat")
    elif (folder / "movies.csv").is_file():
        movies = _parse.read_csv_movies(folder / "movies.csv")

    values = ratings["rating"].to_numpy()
    data = RatingsData(
        ratings=ratings,
        users=users,
        movies=movies,
        layout=layout.name,
        rating_scale=(float(values.min()), float(values.max())),
        fingerprint=f"{layout.name}:sha256:{digest}",
        path=folder,
    )
    data = drop_repeats(data)
    release_arrow_memory()  # the reader's buffers: freed, but kept by the allocator
    return data
