"""Fixtures of the rec-nightly tests: tiny training options and an in-process runner."""

from __future__ import annotations

import pytest

from tests.support import run_nightly_cli


@pytest.fixture
def run_nightly():
    return run_nightly_cli
