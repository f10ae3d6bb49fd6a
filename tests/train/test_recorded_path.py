"""Paths in the checkpoint, metrics and model metadata: as given, or relative to the artifacts."""

from __future__ import annotations

from pathlib import Path

from movierec.train.config import TrainConfig, recorded_path


def test_relative_paths_are_kept_as_the_user_gave_them() -> None:
    assert recorded_path(Path("../shared/data/ml-100k"), "artifacts") == "../shared/data/ml-100k"
    assert recorded_path("artifacts", "/srv/elsewhere") == "artifacts"
    assert recorded_path(None, "artifacts") is None


def test_absolute_paths_become_relative_to_the_artifacts(tmp_path: Path) -> None:
    artifacts = tmp_path / "runs" / "today"
    data = tmp_path / "data" / "ml-100k"
    assert recorded_path(data, artifacts) == "../../data/ml-100k"
    assert recorded_path(artifacts, artifacts) == "."
    assert recorded_path(artifacts / "sub", artifacts) == "sub"
    # a relative artifacts folder is taken from the working directory
    assert recorded_path(Path.cwd() / "data", "artifacts") == "../data"


def test_train_config_records_no_absolute_path(tmp_path: Path) -> None:
    config = TrainConfig(data=tmp_path / "ml-100k", artifacts=tmp_path / "artifacts")
    recorded = config.to_dict()
    assert recorded["data"] == "../ml-100k" and recorded["artifacts"] == "."
    assert TrainConfig(data=Path("ml"), artifacts=Path("a")).to_dict()["data"] == "ml"
