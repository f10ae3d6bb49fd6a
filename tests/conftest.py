"""Shared fixtures: real-data location and a tiny trained model (torch imported lazily,
so the torch-free scorer tests never import it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import TINY


@pytest.fixture(scope="session")
def synthetic_ml100k(tmp_path_factory) -> Path:
    from tests.synthetic import make_ratings, write_ml100k

    folder = tmp_path_factory.mktemp("ml100k")
    write_ml100k(folder, make_ratings(n_users=80, n_movies=100, n_ratings=4000, seed=1))
    return folder


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory, synthetic_ml100k) -> Path:
    """A folder holding a checkpoint trained on synthetic ml-100k-layout data."""
    from movierec.train.config import TrainConfig
    from movierec.train.pipeline import run_training

    out = tmp_path_factory.mktemp("artifacts")
    run_training(
        TrainConfig.for_arch("hybrid", data=synthetic_ml100k, artifacts=out, quiet=True, **TINY)
    )
    return out


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server's URI (see ``tests.support.postgres_server``): skipped where
    none can be had, unless MOVIEREC_REQUIRE_PG=1 (CI), where that fails the test."""
    import os

    from tests.support import PG_REQUIRE_ENV, postgres_server

    required = os.environ.get(PG_REQUIRE_ENV) == "1"
    try:
        import adbc_driver_postgresql  # noqa: F401
    except ImportError:
        message = 'the PostgreSQL tests need the ADBC drivers: pip install -e ".[db]"'
        pytest.fail(message) if required else pytest.skip(message)
    with postgres_server() as (uri, why):
        if uri is None:
            pytest.fail(f"{why} ({PG_REQUIRE_ENV}=1)") if required else pytest.skip(why)
        yield uri


@pytest.fixture
def pg_uri(pg_server):
    """A fresh, empty database on the server for one test (dropped after it)."""
    import secrets

    from tests.support import pg_admin, with_database

    name = f"movierec_{secrets.token_hex(6)}"
    pg_admin(pg_server, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_server, name)
    finally:
        pg_admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_uri(tmp_path):
    """A SQLite database file (not created yet) in the test's folder."""
    import os

    from tests.support import PG_REQUIRE_ENV

    try:
        import adbc_driver_sqlite  # noqa: F401
    except ImportError:
        message = 'the SQLite tests need the ADBC drivers: pip install -e ".[db]"'
        pytest.fail(message) if os.environ.get(PG_REQUIRE_ENV) == "1" else pytest.skip(message)
    return f"sqlite:///{tmp_path / 'movierec.db'}"
