"""Shared fixtures: real-data location and a tiny trained model (torch imported lazily,
so the torch-free scorer tests never import it)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def real_data(name: str) -> Path:
    """The real MovieLens folder ``name`` in ../shared/data, or skip the test cleanly."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent")
    return path


#: Small enough to train in about a second, big enough to have structure to learn.
TINY = dict(epochs=8, batch_size=256, embedding_dim=8, hidden=(16,), factors=8, patience=0)


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
