"""Publishing versions behind a view on PostgreSQL and SQLite: the switch, what a failed
load leaves (nothing), pruning, rollback, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.db import (
    check_target,
    point_view_at,
    prune_tables,
    publish_table,
    published_versions,
    read_ratings_table,
    stage_version,
)
from movierec.db._connect import connect
from movierec.db._uri import parse_database_uri
from movierec.serve_batch.errors import DataError

V1, V2, V3 = "20250101T021500Z", "20250102T021500Z", "20250102T021500Z-2"


def recommendations(path: Path, users: int, k: int, *, titles: bool = True, seed: int = 0):
    """A nightly-shaped table: string user IDs in a column named as the data names it."""
    rng = np.random.default_rng(seed)
    columns = {
        "customer_id": pa.array(np.repeat([f"u{i}" for i in range(users)], k)),
        "rank": pa.array(np.tile(np.arange(1, k + 1), users), pa.int32()),
        "movie_id": pa.array(rng.integers(1, 1000, users * k)),
        "predicted_rating": pa.array(rng.random(users * k), pa.float32()),
    }
    if titles:
        columns["title"] = pa.array([f"movie {i}" for i in range(users * k)])
    pq.write_table(pa.table(columns), path)
    return path


def sql(uri: str, text: str) -> list[tuple]:
    with connect(parse_database_uri(uri)) as conn, conn.cursor() as cursor:
        cursor.execute(text)
        return cursor.fetchall()


def explain(uri: str, query: str) -> str:
    """PostgreSQL's plan of ``query`` with sequential scans ruled out (a tiny table is
    otherwise scanned whole): the index is usable for the per-user query."""
    with connect(parse_database_uri(uri)) as conn, conn.cursor() as cursor:
        # EXPLAIN cannot run inside the COPY the driver wraps result sets in
        cursor.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(f"EXPLAIN {query}")
        return "\n".join(row[0] for row in cursor.fetchall())


def view_rows(uri: str, view: str = "recs") -> tuple[int, int]:
    return tuple(sql(uri, f'SELECT count(*), count(DISTINCT customer_id) FROM "{view}"')[0])


@pytest.fixture(params=["postgresql", "sqlite"])
def uri(request) -> str:
    return request.getfixturevalue("pg_uri" if request.param == "postgresql" else "sqlite_uri")


def test_each_publish_switches_the_view_to_a_new_table(uri: str, tmp_path: Path) -> None:
    assert check_target(uri, "recs") is None
    first = publish_table(uri, "recs", V1, recommendations(tmp_path / "a.parquet", 30, 5))
    assert (first.table, first.rows, first.previous) == ("recs_20250101t021500z", 150, None)
    assert view_rows(uri) == (150, 30)
    second = publish_table(uri, "recs", V2, recommendations(tmp_path / "b.parquet", 40, 5))
    assert second.previous == V1 and view_rows(uri) == (200, 40)
    assert published_versions(uri, "recs") == ([V1, V2], V2)
    assert check_target(uri, "recs") == V2
    assert "@" not in first.target or ":" not in first.target.split("@")[0].split("//")[1]


def test_the_user_column_is_indexed_and_the_rows_read_back(uri: str, tmp_path: Path) -> None:
    path = recommendations(tmp_path / "a.parquet", 20, 3)
    publish_table(uri, "recs", V1, path)
    if uri.startswith("postgresql"):
        indexes = sql(
            uri, "SELECT indexdef FROM pg_indexes WHERE tablename = 'recs_20250101t021500z'"
        )
        assert len(indexes) == 1 and "(customer_id)" in indexes[0][0]
        plan = explain(uri, "SELECT * FROM recs WHERE customer_id = 'u3' ORDER BY rank")
        assert "recs_20250101t021500z_user_idx" in plan
    else:
        indexes = sql(uri, "SELECT sql FROM sqlite_master WHERE type = 'index'")
        assert len(indexes) == 1 and '("customer_id")' in indexes[0][0]
    read = read_ratings_table(uri, query="SELECT * FROM recs ORDER BY customer_id, rank")
    want = pq.read_table(path).sort_by([("customer_id", "ascending"), ("rank", "ascending")])
    assert read.table["movie_id"].to_pylist() == want["movie_id"].to_pylist()


def test_a_load_that_fails_leaves_the_database_as_it_was(uri: str, tmp_path: Path) -> None:
    publish_table(uri, "recs", V1, recommendations(tmp_path / "a.parquet", 30, 5))
    with (
        pytest.raises(RuntimeError, match="killed"),
        stage_version(uri, "recs", V2, recommendations(tmp_path / "b.parquet", 40, 5)) as staged,
    ):
        assert staged.rows == 200  # loaded, indexed, analysed: not committed
        raise RuntimeError("killed before the switch")
    assert published_versions(uri, "recs") == ([V1], V1)
    assert view_rows(uri) == (150, 30)


def test_pruning_keeps_the_listed_versions_and_the_one_in_service(uri, tmp_path) -> None:
    for i, version in enumerate((V1, V2, V3)):
        publish_table(uri, "recs", version, recommendations(tmp_path / f"{i}.parquet", 5, 2))
    point_view_at(uri, "recs", V1)  # a rollback: V1 in service
    assert prune_tables(uri, "recs", keep={V3}) == ["recs_20250102t021500z"]
    assert published_versions(uri, "recs") == ([V1, V3], V1)
    assert prune_tables(uri, "recs", keep=set()) == ["recs_20250102t021500z_2"]
    assert published_versions(uri, "recs") == ([V1], V1)


def test_rollback_points_the_view_at_an_older_table(uri: str, tmp_path: Path) -> None:
    publish_table(uri, "recs", V1, recommendations(tmp_path / "a.parquet", 30, 5))
    publish_table(uri, "recs", V2, recommendations(tmp_path / "b.parquet", 40, 5))
    assert point_view_at(uri, "recs", V1) == V2
    assert view_rows(uri) == (150, 30) and check_target(uri, "recs") == V1
    with pytest.raises(DataError, match="does not exist"):
        point_view_at(uri, "recs", V3)
    assert check_target(uri, "recs") == V1


def test_other_columns_re_create_the_view(uri: str, tmp_path: Path) -> None:
    publish_table(uri, "recs", V1, recommendations(tmp_path / "a.parquet", 3, 2, titles=True))
    publish_table(uri, "recs", V2, recommendations(tmp_path / "b.parquet", 3, 2, titles=False))
    columns = read_ratings_table(uri, table="recs").table.column_names
    assert columns == ["customer_id", "rank", "movie_id", "predicted_rating"]
    point_view_at(uri, "recs", V1)  # and back, with the title column
    assert "title" in read_ratings_table(uri, table="recs").table.column_names


def test_postgresql_keeps_the_views_grants_and_schema(pg_uri: str, tmp_path: Path) -> None:
    from tests.support import pg_admin

    pg_admin(pg_uri, "CREATE SCHEMA app", "CREATE ROLE movierec_reader_test")
    try:
        publish_table(pg_uri, "app.recs", V1, recommendations(tmp_path / "a.parquet", 3, 2))
        pg_admin(pg_uri, "GRANT SELECT ON app.recs TO movierec_reader_test")
        publish_table(pg_uri, "app.recs", V2, recommendations(tmp_path / "b.parquet", 4, 2))
        grants = sql(
            pg_uri,
            "SELECT grantee FROM information_schema.role_table_grants "
            "WHERE table_schema = 'app' AND table_name = 'recs'",
        )
        assert ("movierec_reader_test",) in grants
        assert published_versions(pg_uri, "app.recs") == ([V1, V2], V2)
    finally:
        pg_admin(pg_uri, "DROP SCHEMA app CASCADE", "DROP ROLE movierec_reader_test")


def test_a_table_holding_the_views_name_is_refused_before_loading(uri, tmp_path) -> None:
    sql_text = 'CREATE TABLE "recs" (x integer)'
    with connect(parse_database_uri(uri)) as conn, conn.cursor() as cursor:
        cursor.execute(sql_text)
        conn.commit()
    with pytest.raises(DataError, match="recs is a table, not a view"):
        check_target(uri, "recs")
    with pytest.raises(DataError, match="recs is a table, not a view"):
        publish_table(uri, "recs", V1, recommendations(tmp_path / "a.parquet", 3, 2))
    assert published_versions(uri, "recs") == ([], None)


def test_a_view_kept_busy_fails_the_publish_and_changes_nothing(pg_uri, tmp_path, monkeypatch):
    """A session that keeps the view open (a long query, a transaction left open): the
    publish waits, then fails as unavailable (exit 74) instead of queueing every reader
    behind its switch; the load is rolled back."""
    import adbc_driver_postgresql.dbapi as pg

    from movierec.db import _publish
    from movierec.serve_batch.errors import DatabaseUnavailable

    publish_table(pg_uri, "recs", V1, recommendations(tmp_path / "a.parquet", 30, 5))
    monkeypatch.setattr(_publish, "UNREAD_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(_publish, "SWITCH_LOCK_SECONDS", 0.2)
    with pg.connect(pg_uri) as holder, holder.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM recs")
        cursor.fetchall()  # its lock on the view lasts until its transaction ends
        with pytest.raises(DatabaseUnavailable, match="lock timeout"):
            publish_table(pg_uri, "recs", V2, recommendations(tmp_path / "b.parquet", 40, 5))
        holder.rollback()
    assert published_versions(pg_uri, "recs") == ([V1], V1)
