"""rec-nightly --publish on a real PostgreSQL server, one home through these nights:

1. the first run publishes: the view ``recommendations`` selects from the new version's
   table, and the run report records the target (no password), table, rows, seconds;
2. a deliberately worse candidate is refused (exit 3): nothing changes in the database;
3. a wrong password, an unreachable server, and a view name held by a table each fail
   at once (before training), exit 74, 74 and 2, publishing nothing;
4. a second good run switches the view, and ``--keep 1`` drops the first table.

The password is in the URI of every run; it is in no file under the home and in no
output of any run.
"""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

import pytest

from tests.support import WORSE_ARGS, pg_admin, pg_query, run_nightly_cli, with_database

TOP_K = 5


def served(uri: str) -> tuple[str | None, list[str], tuple[int, int] | None]:
    """(the table the view selects from, the version tables, the view's rows and users)."""
    tables = sorted(
        r[0] for r in pg_query(uri, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    target = pg_query(
        uri,
        "SELECT DISTINCT table_name FROM information_schema.view_table_usage "
        "WHERE view_name = 'recommendations'",
    )
    if not target:
        return None, tables, None
    rows = pg_query(uri, "SELECT count(*), count(DISTINCT user_id) FROM recommendations")[0]
    return target[0][0], tables, tuple(rows)


def report(home: Path, code: int) -> dict:
    reports = sorted((home / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(reports[-1].read_text())


@pytest.fixture(scope="module")
def nights(pg_server, synthetic_ml100k, tmp_path_factory) -> dict:
    """Every night's (exit code, stderr), report and what the database served after it."""
    name = f"movierec_{secrets.token_hex(6)}"
    pg_admin(pg_server, f'CREATE DATABASE "{name}"')
    uri = with_database(pg_server, name)
    password = uri.split("://")[1].split("@")[0].split(":")[1]
    data, home = synthetic_ml100k, tmp_path_factory.mktemp("home")
    out: dict = {"uri": uri, "password": password, "home": home, "outputs": []}

    def night(key: str, *args: str, quiet: bool = True) -> None:
        code, err = run_nightly_cli(data, home, *args, quiet=quiet)
        out["outputs"].append(err)
        out[key] = {"code": code, "err": err, "report": report(home, code), "db": served(uri)}

    publish = ["--publish", uri, "--top-k", str(TOP_K)]
    try:
        night("first", *publish, "--titles", quiet=False)
        night("worse", *publish, *WORSE_ARGS)
        wrong = uri.replace(f":{password}@", ":wrong-password@")
        night("wrong_password", "--publish", wrong)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        night("unreachable", "--publish", f"postgresql://job:{password}@127.0.0.1:{port}/db")
        pg_admin(uri, "CREATE TABLE taken (x integer)")
        night("taken", *publish, "--publish-table", "taken")
        night("second", *publish, "--titles", "--keep", "1")
        yield out
    finally:
        pg_admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow  # the fixture trains three times, a few seconds each
def test_the_first_run_publishes_the_view_and_reports_it(nights) -> None:
    first = nights["first"]
    assert first["code"] == 0, first["err"]
    version = first["report"]["version"]
    table = f"recommendations_{version.lower().replace('-', '_')}"
    target, tables, rows = first["db"]
    assert target == table and tables == [table]
    n_users = first["report"]["recommendations"]["users"]
    assert rows == (n_users * TOP_K, n_users)
    db = first["report"]["database"]
    assert db["table"] == table and db["rows"] == n_users * TOP_K and db["seconds"] >= 0
    assert db["view"] == "recommendations" and db["previous"] is None
    assert db["target"] == nights["uri"].replace(f":{nights['password']}@", "@")
    assert first["report"]["config"]["publish"] == db["target"]
    assert first["report"]["stages"]["database"]["status"] == "done"
    summary, last = first["err"].strip().splitlines()[-2:]  # the summary, the exit status
    assert f"recommendations -> {table}" in summary and last.endswith("rec-nightly exit 0 (done)")


@pytest.mark.slow
def test_a_refused_candidate_publishes_nothing_in_the_database(nights) -> None:
    worse = nights["worse"]
    assert worse["code"] == 3, worse["err"]
    assert worse["db"] == nights["first"]["db"]
    assert "database" not in worse["report"]["stages"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("night", "code", "words"),
    [
        ("wrong_password", 74, "password authentication failed"),
        ("unreachable", 74, "Connection refused"),
        ("taken", 2, "taken is a table, not a view"),
    ],
)
def test_database_failures_stop_the_run_before_training(nights, night, code, words) -> None:
    run = nights[night]
    assert run["code"] == code, run["err"]
    version = run["report"]["version"]  # every line starts with it
    error = [line for line in run["err"].splitlines() if line.startswith(f"{version} Error: ")]
    assert len(error) == 1 and words in error[0]
    assert "Traceback" not in run["err"]
    assert run["report"]["status"] == "failed" and "train" not in run["report"]["stages"]
    assert run["db"][0] == nights["first"]["db"][0]


@pytest.mark.slow
def test_the_second_run_switches_the_view_and_keep_1_drops_the_first(nights) -> None:
    second, first = nights["second"], nights["first"]
    assert second["code"] == 0, second["err"]
    table = second["report"]["database"]["table"]
    target, tables, rows = second["db"]
    assert target == table != first["db"][0]
    assert tables == sorted([table, "taken"])  # the first version's table was dropped
    assert second["report"]["database"]["pruned"] == [first["db"][0]]
    assert second["report"]["database"]["previous"] == first["report"]["version"]


@pytest.mark.slow
def test_the_password_is_nowhere_under_the_home_nor_in_any_output(nights) -> None:
    password = nights["password"].encode()
    files = [p for p in nights["home"].rglob("*") if p.is_file()]
    assert len(files) > 10
    assert [p for p in files if password in p.read_bytes()] == []
    assert [err for err in nights["outputs"] if nights["password"] in err] == []
    assert len(nights["outputs"]) == 6


def test_a_bad_publish_uri_is_refused_at_once_without_repeating_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from movierec.nightly.cli import cli

    result = CliRunner().invoke(
        cli,
        ["--data", str(tmp_path), "--home", str(tmp_path / "h"), "--publish", "mysql://u:pw9@h/db"],
    )
    assert result.exit_code == 2
    assert "expected a database URI (postgresql://USER@HOST:PORT/DB" in result.output
    assert "pw9" not in result.output and not (tmp_path / "h").exists()


def test_the_report_records_the_uri_without_its_password(tmp_path: Path) -> None:
    from movierec.db import parse_database_uri
    from movierec.nightly.config import NightlyConfig

    uri = parse_database_uri("postgresql://job:pw9@db:5432/shop")
    config = NightlyConfig(data=tmp_path, home=tmp_path, publish=uri, publish_table="app.recs")
    assert config.to_dict()["publish"] == "postgresql://job@db:5432/shop"
    assert "pw9" not in json.dumps(config.to_dict()) and "pw9" not in repr(config)
