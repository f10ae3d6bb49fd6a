"""The database tests run against a real server in CI and are never skipped there:
.ci/run starts one and sets MOVIEREC_REQUIRE_PG=1, under which the fixture fails instead
of skipping when no server can be had."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PG_REQUIRE_ENV, PG_START_ENV, PG_URI_ENV

REPO = Path(__file__).resolve().parents[2]

PROBE = """
def test_needs_postgres(pg_server):
    assert pg_server
"""


def run_probe(tmp_path: Path, env: dict[str, str]) -> str:
    """Run a one-test file that asks for the server fixture (the tests' own conftest as
    a plugin); pytest's summary line."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in (PG_URI_ENV, PG_REQUIRE_ENV, PG_START_ENV, "PYTEST_ADDOPTS")
    }
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider"]
        + ["--rootdir", str(tmp_path), str(probe)],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def test_ci_runs_the_database_tests_against_a_server() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("checks CI's settings (CI=true)")
    assert os.environ.get(PG_REQUIRE_ENV) == "1", f".ci/run must set {PG_REQUIRE_ENV}=1"
    assert os.environ.get(PG_URI_ENV, "").startswith("postgresql://"), (
        f".ci/run must start a server and set {PG_URI_ENV}"
    )


@pytest.mark.slow  # two pytest processes, ~4 s each
def test_a_required_server_that_cannot_be_had_fails_the_tests(tmp_path: Path) -> None:
    no_server = {PG_START_ENV: "0"}
    assert "1 skipped" in run_probe(tmp_path, no_server)
    assert "1 error" in run_probe(tmp_path, {**no_server, PG_REQUIRE_ENV: "1"})
