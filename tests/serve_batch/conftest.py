"""Fixtures of the serve_batch tests: a tiny fake model and a CLI runner (torch-free)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from movierec.serve_batch import Artifacts, load_artifacts
from movierec.serve_batch.cli import cli
from movierec.serve_batch.cli_support import run_command
from tests.support import FakeArtifacts, build_fake_artifacts, build_fake_catalog


@pytest.fixture(scope="session")
def fake(tmp_path_factory: pytest.TempPathFactory) -> FakeArtifacts:
    return build_fake_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def fake_ranked(tmp_path_factory: pytest.TempPathFactory) -> FakeArtifacts:
    """Like ``fake`` plus a ``rank_score`` output (a ranking head), as rec-export writes."""
    return build_fake_artifacts(tmp_path_factory.mktemp("ranked"), seed=5, rank_head=True)


@pytest.fixture(scope="session")
def fake_catalog(tmp_path_factory: pytest.TempPathFactory) -> FakeArtifacts:
    """Like ``fake`` with a ``catalog.onnx`` beside the model."""
    fake = build_fake_artifacts(tmp_path_factory.mktemp("with_catalog"))
    build_fake_catalog(fake)
    return fake


@pytest.fixture(scope="session")
def fake_ranked_catalog(tmp_path_factory: pytest.TempPathFactory) -> FakeArtifacts:
    """Like ``fake_ranked`` with a ``catalog.onnx`` beside the model."""
    fake = build_fake_artifacts(tmp_path_factory.mktemp("ranked_catalog"), seed=5, rank_head=True)
    build_fake_catalog(fake)
    return fake


#: The ID columns of the string-ID fakes: a service's own names, not MovieLens'.
STRING_COLUMNS = ("customer_id", "sku")


@pytest.fixture(scope="session")
def fake_strings(tmp_path_factory: pytest.TempPathFactory) -> FakeArtifacts:
    """String user and movie IDs under the columns customer_id / sku, a rank head, the
    exporter's compact mapping, and a catalog graph."""
    fake = build_fake_artifacts(
        tmp_path_factory.mktemp("strings"),
        seed=7,
        rank_head=True,
        id_types=("string", "string"),
        columns=STRING_COLUMNS,
        compact=True,
    )
    build_fake_catalog(fake)
    return fake


@pytest.fixture(scope="session")
def fake_strings_plain(tmp_path_factory: pytest.TempPathFactory) -> FakeArtifacts:
    """String IDs, no rank head, an indented mapping (read by json.loads), no catalog graph."""
    return build_fake_artifacts(
        tmp_path_factory.mktemp("strings_plain"),
        seed=8,
        id_types=("string", "string"),
        columns=STRING_COLUMNS,
    )


@pytest.fixture(scope="session")
def fake_mixed(tmp_path_factory: pytest.TempPathFactory) -> FakeArtifacts:
    """Integer users with string movie IDs (SKUs), under member / sku, with a catalog graph."""
    fake = build_fake_artifacts(
        tmp_path_factory.mktemp("mixed"),
        seed=9,
        rank_head=True,
        id_types=("int", "string"),
        columns=("member", "sku"),
        compact=True,
    )
    build_fake_catalog(fake)
    return fake


@pytest.fixture(params=["strings", "strings_plain", "mixed"])
def any_fake_strings(request: pytest.FixtureRequest) -> FakeArtifacts:
    """Each kind of model with string IDs on one side or both."""
    return request.getfixturevalue(f"fake_{request.param}")


@pytest.fixture(params=["plain", "ranked"])
def any_fake_catalog(request: pytest.FixtureRequest) -> FakeArtifacts:
    """Each kind of model, with its catalog graph."""
    return request.getfixturevalue(
        "fake_catalog" if request.param == "plain" else "fake_ranked_catalog"
    )


@pytest.fixture(params=["plain", "ranked"])
def any_fake(request: pytest.FixtureRequest) -> FakeArtifacts:
    """Each kind of model: ranked by the rating, and by a ``rank_score`` output."""
    return request.getfixturevalue("fake" if request.param == "plain" else "fake_ranked")


@pytest.fixture(scope="session")
def arts(fake: FakeArtifacts) -> Artifacts:
    return load_artifacts(fake.model_path, fake.mapping_path, threads=1)


@pytest.fixture
def make_pairs(fake: FakeArtifacts):
    """Random pairs over known IDs, plus unknown ones where asked."""

    def make(
        n: int, *, seed: int = 0, unknown: bool = False, source: FakeArtifacts | None = None
    ) -> dict[str, np.ndarray]:
        src = source or fake
        rng = np.random.default_rng(seed)
        users = src.user_ids if not unknown else np.r_[src.user_ids, [1, 2, 99999]]
        movies = src.movie_ids if not unknown else np.r_[src.movie_ids, [3, 88888]]
        return {
            "user_id": rng.choice(users, n),
            "movie_id": rng.choice(movies, n),
        }

    return make


@pytest.fixture
def run_cli(fake: FakeArtifacts, capsys: pytest.CaptureFixture):
    """Run rec-score in-process through the real exit-code mapping: (code, stderr)."""

    def run(*args: str | Path, artifacts: bool = True) -> tuple[int, str]:
        argv = [str(a) for a in args]
        if artifacts:
            argv += ["--artifacts", str(fake.folder)]
        capsys.readouterr()
        code = run_command(cli, argv + ["--quiet"])
        return code, capsys.readouterr().err

    return run
