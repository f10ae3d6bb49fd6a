"""Ratings data: find it (``resolve_data_path``) and read it (``load_ratings``).

``load_ratings`` reads a user's own table (a Parquet file, a folder of Parquet parts or a
CSV file, with the column names a ``Columns`` value gives, string or integer IDs) or a
MovieLens folder. Three MovieLens folder layouts are read, detected from the ratings file
present:

- ``u.data`` → ``"ml-100k"`` (MovieLens 100K: tab-separated; u.item, u.user, u.genre);
- ``ratings.dat`` → ``"ml-1m"`` (``::``-separated: ml-1m, and ml-10m without users.dat);
- ``ratings.csv`` → ``"csv"`` (ml-latest-small, ml-20m, ml-25m: CSV with a header).

Every problem with the data raises ``movierec.serve_batch.errors.DataError`` naming the file,
the line or row, the column and what is wrong. Every loader returns ``RatingsData``.
"""

from typing import Any

from movierec.train.data._columns import Columns

__all__ = [
    "ML100K_SHA256",
    "ML100K_URL",
    "Columns",
    "RatingsData",
    "Vocabulary",
    "load_movielens",
    "load_ratings",
    "resolve_data_path",
]

#: Where each name lives: imported on first use, so that the command lines' option
#: definitions (which need ``Columns``) do not load pandas and pyarrow for ``--help``.
_LAZY = {
    "ML100K_SHA256": "_download",
    "ML100K_URL": "_download",
    "resolve_data_path": "_download",
    "RatingsData": "_dataset",
    "load_movielens": "_movielens",
    "load_ratings": "_sources",
    "Vocabulary": "_vocab",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
