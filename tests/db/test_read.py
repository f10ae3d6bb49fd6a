"""``read_ratings_table`` on a real PostgreSQL server and on SQLite: Arrow types, row
order, fingerprints, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.db import fingerprint_table, read_ratings_table
from movierec.serve_batch.errors import DataError, UsageError


def ratings(n: int = 5000, seed: int = 0, string_ids: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 300, n)
    return pa.table(
        {
            "customer_id": pa.array([f"c{u}" for u in users]) if string_ids else users,
            "movie_id": rng.integers(1, 500, n),
            "rating": pa.array(rng.integers(1, 11, n) / 2, pa.float32()),
            "timestamp": rng.integers(8e8, 9e8, n),
        }
    )


def load(uri: str, name: str, table: pa.Table) -> None:
    """Create ``name`` from ``table`` with the driver's own bulk load (as a user's
    export would)."""
    from movierec.db._connect import connect
    from movierec.db._names import TableName
    from movierec.db._uri import parse_database_uri

    target = TableName.parse(name)
    with connect(parse_database_uri(uri)) as conn, conn.cursor() as cursor:
        if target.schema and uri.startswith("postgresql"):
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"')
        cursor.adbc_ingest(target.name, table, mode="create", db_schema_name=target.schema)
        conn.commit()


@pytest.fixture(params=["postgresql", "sqlite"])
def uri(request) -> str:
    return request.getfixturevalue("pg_uri" if request.param == "postgresql" else "sqlite_uri")


def test_postgresql_reads_back_the_parquet_files_types_and_rows(pg_uri, tmp_path: Path) -> None:
    table = ratings(string_ids=True)
    pq.write_table(table, tmp_path / "r.parquet")
    load(pg_uri, "app.ratings", table)
    read = read_ratings_table(pg_uri, table="app.ratings")
    from_file = pq.read_table(tmp_path / "r.parquet")
    assert read.table.schema == from_file.schema  # the same Arrow types, no metadata
    assert read.table.equals(from_file)  # and the same rows in the same order
    assert read.fingerprint == f"database:{fingerprint_table(from_file)}"
    assert read.rows == 5000 and "app.ratings" in read.source and read.seconds > 0


def test_columns_are_read_in_the_order_asked(uri: str) -> None:
    load(uri, "ratings", ratings(200))
    read = read_ratings_table(uri, table="ratings", columns=["movie_id", "customer_id"])
    assert read.table.column_names == ["movie_id", "customer_id"]
    assert read.table.column("movie_id").to_pylist() == ratings(200)["movie_id"].to_pylist()


def test_a_query_is_read_as_written(uri: str) -> None:
    load(uri, "ratings", ratings(300))
    query = "SELECT customer_id, movie_id FROM ratings WHERE rating >= 4 ORDER BY movie_id;"
    read = read_ratings_table(uri, query=query)
    want = ratings(300).filter(pa.compute.greater_equal(ratings(300)["rating"], 4))
    assert read.rows == want.num_rows
    assert read.table["movie_id"].to_pylist() == sorted(want["movie_id"].to_pylist())
    picked = read_ratings_table(uri, query=query, columns=["movie_id"])
    assert picked.table.column_names == ["movie_id"]


def test_the_fingerprint_depends_on_the_rows_not_on_batches(uri: str) -> None:
    load(uri, "ratings", ratings(3000))
    first = read_ratings_table(uri, table="ratings")
    assert read_ratings_table(uri, table="ratings").fingerprint == first.fingerprint
    rebatched = pa.Table.from_batches(first.table.to_batches(max_chunksize=7))
    assert f"database:{fingerprint_table(rebatched)}" == first.fingerprint
    changed = first.table.set_column(2, "rating", pa.array(np.ones(3000), pa.float32()))
    assert f"database:{fingerprint_table(changed)}" != first.fingerprint


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(table="nosuch"), "cannot read the table nosuch"),
        (dict(table="ratings", columns=["customer_id", "nocol"]), "no column 'nocol'"),
        (dict(query="SELEC 1"), "syntax error"),
        (dict(query="SELECT * FROM ratings WHERE false"), "the query has no rows"),
    ],
)
def test_bad_tables_columns_and_queries_are_one_line_data_errors(uri, kwargs, words) -> None:
    load(uri, "ratings", ratings(10))
    with pytest.raises(DataError, match=words) as info:
        read_ratings_table(uri, **kwargs)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(uri.split("://")[0])


def test_neither_or_both_of_table_and_query_is_a_usage_error(sqlite_uri) -> None:
    with pytest.raises(UsageError, match="either table or query"):
        read_ratings_table(sqlite_uri)
    with pytest.raises(UsageError, match="either table or query"):
        read_ratings_table(sqlite_uri, table="a", query="SELECT 1")


def test_a_missing_sqlite_file_is_refused_not_created(sqlite_uri) -> None:
    from movierec.db import parse_database_uri

    with pytest.raises(DataError, match="no such database file"):
        read_ratings_table(sqlite_uri, table="ratings")
    assert not parse_database_uri(sqlite_uri).path.exists()
