"""Databases through ADBC: read ratings from, and publish each night's table into,
PostgreSQL and SQLite (``pip install "movierec[db]"``).

- :func:`read_ratings_table`: a table or query as one Arrow table, with a fingerprint;
- :func:`publish_table` / :func:`stage_version`: a Parquet table loaded as
  ``<name>_<VERSION>`` and the view ``<name>`` switched to it in one transaction;
  :func:`point_view_at` (rollback), :func:`prune_tables`, :func:`published_versions`;
- :class:`DatabaseURI` (``parse_database_uri``, ``is_database_uri``): a URI whose
  ``str``/``repr`` never show its password.

Importing this package does not import the ADBC drivers; opening a connection does.
"""

from movierec.db._connect import check_drivers
from movierec.db._publish import (
    PublishedTable,
    check_target,
    point_view_at,
    prune_tables,
    publish_table,
    published_versions,
    stage_version,
)
from movierec.db._read import DatabaseRead, column_names, fingerprint_table, read_ratings_table
from movierec.db._uri import DatabaseURI, is_database_uri, parse_database_uri

__all__ = [
    "DatabaseRead",
    "DatabaseURI",
    "PublishedTable",
    "check_drivers",
    "check_target",
    "column_names",
    "fingerprint_table",
    "is_database_uri",
    "parse_database_uri",
    "point_view_at",
    "prune_tables",
    "publish_table",
    "published_versions",
    "read_ratings_table",
    "stage_version",
]
