"""Database URIs (no password ever shown) and table names (quoted, versioned); no server."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from movierec.db import DatabaseURI, is_database_uri, parse_database_uri
from movierec.db._names import (
    TableName,
    quote_identifier,
    version_of,
    version_sort_key,
    version_table,
)
from movierec.serve_batch.errors import UsageError

SECRET = "s3cr%2Ft@x"  # percent-encoded "/" in it, and an "@"


def test_a_password_in_the_uri_is_parsed_and_never_shown() -> None:
    uri = parse_database_uri(f"postgresql://job:{SECRET}@db.example:5433/ratings?sslmode=require")
    assert uri.dialect == "postgresql"
    assert uri.password == "s3cr/t@x"
    assert uri.driver_uri.startswith("postgresql://job:s3cr%2Ft@x@")  # libpq parses it
    for shown in (str(uri), repr(uri), f"{uri}", f"{uri!r}"):
        assert "s3cr" not in shown
    assert str(uri) == "postgresql://job@db.example:5433/ratings?sslmode=require"


def test_a_password_given_as_a_query_parameter_is_hidden_too() -> None:
    uri = parse_database_uri("postgres://job@h/db?password=hunter2&application_name=x")
    assert uri.password == "hunter2"
    assert "hunter2" not in str(uri) and "hunter2" not in repr(uri)
    assert str(uri) == "postgresql://job@h/db?application_name=x"


def test_redact_masks_the_password_the_driver_may_echo() -> None:
    uri = parse_database_uri(f"postgresql://job:{SECRET}@h:1/db")
    text = f"failed for {uri.driver_uri}; password s3cr/t@x; encoded {SECRET}"
    cleaned = uri.redact(text)
    assert "s3cr" not in cleaned
    assert str(uri) in cleaned


def test_without_a_password_nothing_is_masked() -> None:
    uri = parse_database_uri("postgresql://job@h:5432/db")
    assert uri.password is None and uri.redact("job@h") == "job@h"
    assert str(uri) == "postgresql://job@h:5432/db"


def test_sqlite_uris_follow_sqlalchemy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = parse_database_uri("sqlite:///sub/nightly.db")
    absolute = parse_database_uri("sqlite:////srv/nightly.db")
    assert relative.path == tmp_path / "sub" / "nightly.db"
    assert absolute.path == Path("/srv/nightly.db")
    assert str(absolute) == "sqlite:////srv/nightly.db"
    assert relative.dialect == "sqlite" and relative.password is None


@pytest.mark.parametrize("text", ["sqlite://host/x.db", "sqlite:///", "sqlite:///x.db?mode=ro"])
def test_bad_sqlite_uris_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="sqlite:///"):
        parse_database_uri(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u@h/db", True),
        ("postgres://u@h/db", True),
        ("POSTGRESQL://u@h/db", True),
        ("sqlite:///x.db", True),
        ("mysql://u@h/db", False),
        ("ratings/", False),
        ("/data/ml-100k", False),
        (Path("postgresql:/x"), False),
    ],
)
def test_is_database_uri(text, expected: bool) -> None:
    assert is_database_uri(text) is expected


def test_a_refused_uri_is_not_repeated_in_the_message() -> None:
    with pytest.raises(UsageError) as info:
        parse_database_uri("mysql://job:hunter2@h/db")
    assert "hunter2" not in str(info.value) and "a mysql:// URI" in str(info.value)


def test_uri_values_compare_without_their_password() -> None:
    a = parse_database_uri("postgresql://u:one@h/db")
    b = parse_database_uri("postgresql://u:two@h/db")
    assert a == b and isinstance(a, DatabaseURI)


def test_identifiers_are_quoted_never_pasted() -> None:
    assert quote_identifier('we"ird; DROP TABLE x') == '"we""ird; DROP TABLE x"'
    assert TableName.parse("ratings").sql == '"ratings"'
    assert TableName.parse("app.Ratings").sql == '"app"."Ratings"'
    for bad in ("a.b.c", ".x", "x.", ""):
        with pytest.raises(UsageError, match="NAME or SCHEMA.NAME"):
            TableName.parse(bad)


def test_version_tables_are_lower_case_and_round_trip() -> None:
    view = TableName.parse("app.recommendations")
    table = version_table(view, "20250301T021500Z-2")
    assert str(table) == "app.recommendations_20250301t021500z_2"
    assert version_of(view, table.name) == "20250301T021500Z-2"
    assert version_of(view, "recommendations_backup") is None
    assert version_of(view, "recommendations_20250301t021500z_old") is None


@given(
    st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda d: d.strftime("%Y%m%dT%H%M%SZ")),
    st.one_of(st.none(), st.integers(2, 999)),
)
def test_version_names_round_trip_through_table_names(base: str, n: int | None) -> None:
    version = base if n is None else f"{base}-{n}"
    view = TableName("recs")
    assert version_of(view, version_table(view, version).name) == version


def test_versions_sort_in_run_order() -> None:
    names = ["20250102T000000Z", "20250101T000000Z-10", "20250101T000000Z-2", "20250101T000000Z"]
    assert sorted(names, key=version_sort_key) == [
        "20250101T000000Z",
        "20250101T000000Z-2",
        "20250101T000000Z-10",
        "20250102T000000Z",
    ]


def test_a_name_too_long_for_postgresql_is_refused() -> None:
    with pytest.raises(UsageError, match="too long"):
        version_table(TableName("r" * 40), "20250101T000000Z-99")


def test_importing_movierec_db_does_not_import_the_drivers() -> None:
    import subprocess
    import sys

    code = "import sys, movierec.db; print([m for m in sys.modules if m.startswith('adbc')])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "[]"
