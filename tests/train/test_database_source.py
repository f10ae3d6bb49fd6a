"""Ratings read from a database (``--data URI --table/--query``): the same data, the same
model, as the Parquet export of the same rows; the password nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.serve_batch import contract
from movierec.serve_batch.cli_support import run_command
from movierec.train.cli import cli
from movierec.train.data import Columns, load_ratings
from tests.support import TINY_ARGS
from tests.synthetic import LOG_ARGS, LOG_COLUMNS, log_frame, make_ratings, write_items, write_log

COLUMNS = Columns(**LOG_COLUMNS, title="name")


def ingest(uri: str, name: str, table: pa.Table) -> None:
    """Create the table ``name`` from ``table`` (as a service's export would)."""
    from movierec.db._connect import connect
    from movierec.db._uri import parse_database_uri

    with connect(parse_database_uri(uri)) as conn, conn.cursor() as cursor:
        cursor.adbc_ingest(name, table, mode="create")
        conn.commit()


@pytest.fixture(scope="module")
def data():
    return make_ratings(n_users=50, n_movies=60, n_ratings=1500, seed=7)


@pytest.fixture
def exported(data, tmp_path: Path) -> tuple[Path, Path, pa.Table]:
    """The log as a Parquet file, its items table, and the same rows as an Arrow table."""
    path = write_log(tmp_path / "log.parquet", log_frame(data))
    items = write_items(tmp_path / "items.parquet", data)
    return path, items, pq.read_table(path)


@pytest.fixture(params=["postgresql", "sqlite"])
def uri(request) -> str:
    return request.getfixturevalue("pg_uri" if request.param == "postgresql" else "sqlite_uri")


def test_a_database_table_reads_as_its_parquet_export(uri, exported) -> None:
    path, items, table = exported
    # SQLite has no timestamp type: the times go in as ISO text there, as an export would
    if uri.startswith("sqlite"):
        times = table.column("event_time").cast(pa.timestamp("ms")).cast(pa.string())
        table = table.set_column(3, "event_time", times)
    ingest(uri, "ratings", table)
    ingest(uri, "items", pq.read_table(items))
    from_db = load_ratings(uri, COLUMNS, "items", table="ratings")
    from_file = load_ratings(path, COLUMNS, items)
    assert from_db.layout == "database" and from_db.fingerprint.startswith("database:sha256:")
    assert str(from_db.path).endswith("table ratings")
    for a, b in zip(from_db.encoded[1:], from_file.encoded[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(from_db.encoded[0].user_ids) == list(from_file.encoded[0].user_ids)
    np.testing.assert_array_equal(from_db.ratings["rating"], from_file.ratings["rating"])
    np.testing.assert_array_equal(from_db.ratings["timestamp"], from_file.ratings["timestamp"])
    assert from_db.movies["title"].tolist() == from_file.movies["title"].tolist()


def test_a_query_selects_the_ratings(sqlite_uri, exported) -> None:
    _, _, table = exported
    ingest(
        sqlite_uri,
        "events",
        table.set_column(3, "event_time", table["event_time"].cast(pa.int64())),
    )
    found = load_ratings(
        sqlite_uri,
        Columns(user="u", movie="m", rating="r", time=None),
        query="SELECT customer_id AS u, sku AS m, stars AS r FROM events WHERE stars >= 3",
    )
    assert len(found.ratings) == int((table["stars"].to_numpy() >= 3).sum())
    assert not found.has_time


def test_the_command_trains_the_same_model_as_from_the_file(pg_uri, exported, tmp_path) -> None:
    path, _, table = exported
    ingest(pg_uri, "ratings", table)
    flags = [*LOG_ARGS, *TINY_ARGS, "-q"]
    runs = {}
    for name, source in (("db", [pg_uri, "--table", "ratings"]), ("file", [str(path)])):
        out = tmp_path / name
        code = run_command(cli, ["--data", *source, "--artifacts", str(out), *flags])
        assert code == 0
        runs[name] = json.loads((out / contract.METRICS_FILE).read_text())
    for key in ("rmse", "ndcg@10", "precision@10"):
        assert runs["db"]["test"][key] == runs["file"]["test"][key]
    assert runs["db"]["data"]["layout"] == "database"


def test_the_password_is_in_no_artifact_and_no_message(pg_uri, exported, tmp_path, capsys) -> None:
    from movierec.db._uri import parse_database_uri

    _, _, table = exported
    ingest(pg_uri, "ratings", table)
    password = parse_database_uri(pg_uri).password
    assert password  # the test server's logins need one
    out = tmp_path / "a"
    args = ["--data", pg_uri, "--table", "ratings", "--artifacts", str(out), *TINY_ARGS, "-q"]
    assert run_command(cli, [*args, *LOG_ARGS]) == 0
    assert run_command(cli, [*args, "--user-col", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no column 'nope'" in err and password not in err
    for file in out.rglob("*"):
        if file.is_file():
            assert password.encode() not in file.read_bytes(), file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--table", "ratings"], "--table and --query read from a database"),
        (["--query", "SELECT 1"], "--table and --query read from a database"),
    ],
)
def test_table_and_query_need_a_database(exported, tmp_path, capsys, args, message) -> None:
    path, _, _ = exported
    code = run_command(cli, ["--data", str(path), "--artifacts", str(tmp_path / "a"), *args])
    assert code == 2 and message in capsys.readouterr().err


def test_a_database_needs_a_table_or_a_query(sqlite_uri, tmp_path, capsys) -> None:
    code = run_command(cli, ["--data", sqlite_uri, "--artifacts", str(tmp_path / "a")])
    assert code == 2
    assert "needs --table NAME or --query SELECT" in capsys.readouterr().err
