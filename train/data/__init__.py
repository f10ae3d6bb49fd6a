"""MovieLens data: find it (``resolve_data_path``) and read it (``load_movielens``).

Three folder layouts are read, detected from the ratings file present:

- ``u.data`` → ``"ml-100k"`` (MovieLens 100K: tab-separated; u.item, u.user, u.genre);
- ``ratings.dat`` → ``"ml-1m"`` (``::``-separated: ml-1m, and ml-10m without users.dat);
- ``ratings.csv`` → ``"csv"`` (ml-latest-small, ml-20m, ml-25m: CSV with a header).

Every problem with the data raises ``movierec.serve_batch.errors.DataError`` naming the file,
the line and what is wrong.
"""

from movierec.train.data._download import ML100K_SHA256, ML100K_URL, resolve_data_path
from movierec.train.data._movielens import MovieLensData, load_movielens

__all__ = [
    "ML100K_SHA256",
    "ML100K_URL",
    "MovieLensData",
    "load_movielens",
    "resolve_data_path",
]
