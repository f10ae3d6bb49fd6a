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
