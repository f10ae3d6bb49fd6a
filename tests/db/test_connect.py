"""Credentials as libpq takes them, and each failure as one line with the right exit code:
an unreachable server, a refused login or a lost connection exit 74; a missing database,
table or column, a bad query or a denied permission exit 2. Never a password."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from movierec.db import check_target, read_ratings_table
from movierec.db._connect import connect, database_errors, describe, error_kind
from movierec.db._uri import parse_database_uri
from movierec.serve_batch.cli_support import _ERROR_CODES, EXIT_BAD_INPUT, EXIT_OS_ERROR
from movierec.serve_batch.errors import DatabaseUnavailable, DataError
from tests.support import pg_admin, pg_query

ROLE, PASSWORD = "movierec_job_test", "pw-Zq8/x@1"
ENCODED = "pw-Zq8%2Fx%401"


def exit_code(exc: Exception) -> int:
    return next(code for kind, code in _ERROR_CODES if isinstance(exc, kind))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def job_role(pg_uri: str):
    """A login role with a password and no privileges beyond its own schema; yields the
    URI of the test database for that role, without a password."""
    pg_admin(
        pg_uri,
        f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'",
        "CREATE TABLE secret_ratings (user_id bigint)",
        "INSERT INTO secret_ratings VALUES (1)",
    )
    user_part, host_part = pg_uri.split("://", 1)[1].split("@", 1)
    try:
        yield f"postgresql://{ROLE}@{host_part}"
    finally:
        pg_admin(pg_uri, "DROP TABLE secret_ratings", f"DROP OWNED BY {ROLE}", f"DROP ROLE {ROLE}")


def current_user(uri: str, env: dict[str, str]) -> str:
    code = (
        "import sys; from movierec.db._connect import connect; "
        "from movierec.db import parse_database_uri\n"
        "with connect(parse_database_uri(sys.argv[1])) as c, c.cursor() as cur:\n"
        "    cur.execute('SELECT current_user'); print(cur.fetchone()[0])"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    out = subprocess.run(
        [sys.executable, "-c", code, uri], env={**clean, **env}, capture_output=True, text=True
    )
    return out.stdout.strip() or out.stderr.strip().splitlines()[-1]


def test_the_password_comes_from_the_uri_pgpassword_or_pgpass(job_role, tmp_path) -> None:
    with_password = job_role.replace(f"{ROLE}@", f"{ROLE}:{ENCODED}@")
    assert current_user(with_password, {}) == ROLE
    assert current_user(job_role, {"PGPASSWORD": PASSWORD}) == ROLE
    host, port = job_role.split("@")[1].split("/")[0].split(":")
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass"
    pgpass.write_text(f"{host}:{port}:*:{ROLE}:{PASSWORD}\n")
    pgpass.chmod(stat.S_IRUSR | stat.S_IWUSR)  # libpq ignores a file others can read
    assert current_user(job_role, {"HOME": str(home)}) == ROLE
    assert current_user(job_role, {"PGPASSFILE": str(pgpass)}) == ROLE
    # and without any of them the login is refused: exit 74, the cause in one line
    refused = current_user(job_role, {"HOME": str(tmp_path)})
    assert "no password supplied" in refused and "DatabaseUnavailable" in refused


def test_a_wrong_password_is_refused_as_unavailable_and_never_shown(job_role) -> None:
    uri = job_role.replace(f"{ROLE}@", f"{ROLE}:wrong-{ENCODED}@")
    with pytest.raises(DatabaseUnavailable, match="password authentication failed") as info:
        check_target(uri, "recommendations")
    assert exit_code(info.value) == EXIT_OS_ERROR
    assert "Zq8" not in str(info.value) and "\n" not in str(info.value)


def test_an_unreachable_server_exits_74() -> None:
    uri = f"postgresql://job:{ENCODED}@127.0.0.1:{free_port()}/db"
    pytest.importorskip("adbc_driver_postgresql")
    with pytest.raises(DatabaseUnavailable, match="cannot connect: Connection refused") as info:
        read_ratings_table(uri, table="ratings")
    assert exit_code(info.value) == EXIT_OS_ERROR and "Zq8" not in str(info.value)
    assert str(info.value).startswith("postgresql://job@127.0.0.1:")


def test_a_lost_connection_exits_74(pg_uri: str) -> None:
    uri = parse_database_uri(pg_uri)
    with connect(uri) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        pg_query(pg_uri, "SELECT pg_terminate_backend($1::integer)", (pid,))
        with (
            pytest.raises(DatabaseUnavailable, match="terminating connection") as info,
            database_errors(uri, "cannot read"),
        ):
            cursor.execute("SELECT 1")
    assert exit_code(info.value) == EXIT_OS_ERROR


def test_a_missing_database_or_a_denied_permission_exits_2(job_role, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from movierec.db import publish_table

    uri = job_role.replace(f"{ROLE}@", f"{ROLE}:{ENCODED}@")
    with pytest.raises(DataError, match="permission denied for table secret_ratings") as info:
        read_ratings_table(uri, table="secret_ratings")
    assert exit_code(info.value) == EXIT_BAD_INPUT
    missing_db = uri.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(DataError, match='database "no_such_db" does not exist'):
        read_ratings_table(missing_db, table="ratings")
    # PostgreSQL 15 grants no CREATE on the public schema: a refused publish, not an outage
    parquet = tmp_path / "recs.parquet"
    pq.write_table(pa.table({"user_id": [1, 2], "rank": [1, 1], "movie_id": [5, 6]}), parquet)
    with pytest.raises(DataError, match="permission denied for schema public") as info:
        publish_table(uri, "recs", "20250101T000000Z", parquet)
    assert "Zq8" not in str(info.value)


class FakeError(Exception):
    """Stands for a driver error (their module is adbc_driver_manager)."""

    __module__ = "adbc_driver_manager"

    def __init__(self, text: str, sqlstate: str | None = None, status: str | None = None):
        super().__init__(text)
        self.sqlstate = sqlstate
        self.status_code = type("S", (), {"name": status})() if status else None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (FakeError("x", "53100"), DatabaseUnavailable),  # disk full
        (FakeError("x", "57P01"), DatabaseUnavailable),  # admin shutdown
        (FakeError("x", "55P03"), DatabaseUnavailable),  # lock not available
        (FakeError("x", "40P01"), DatabaseUnavailable),  # deadlock
        (FakeError("x", "42501"), DataError),  # permission denied
        (FakeError("x", "42P01"), DataError),  # undefined table
        (FakeError("x", "22012"), DataError),  # division by zero
        (FakeError("IO: [SQLite] database is locked", status="IO"), DatabaseUnavailable),
        (FakeError("IO: [SQLite] database or disk is full"), DatabaseUnavailable),
        (FakeError("INVALID_ARGUMENT: no such table: x", status="INVALID_ARGUMENT"), DataError),
    ],
)
def test_error_kinds(error: Exception, kind: type) -> None:
    assert error_kind(error) is kind


def test_describe_keeps_the_servers_first_line_only() -> None:
    text = (
        'NOT_FOUND: Failed to prepare query: ERROR:  relation "nosuch" does not exist\n'
        "LINE 1: select * from nosuch\n  ^\n\nQuery was: select * from nosuch. SQLSTATE: 42P01"
    )
    assert describe(FakeError(text)) == 'relation "nosuch" does not exist'
