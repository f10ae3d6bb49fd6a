"""Torch-free batch scoring of exported movierec models (``rec-score``).

Public API::

    from movierec.serve_batch import load_artifacts, ScoreConfig, score_file, score_catalog

    arts = load_artifacts(Path("artifacts/model.onnx"), Path("artifacts/id_mapping.json"))
    res = arts.predict_ids(user_ids, movie_ids)            # what rec-score runs per batch
    manifest = score_file(ScoreConfig(input=Path("pairs.parquet"), output=Path("out.parquet")))

Unknown IDs (``on_unknown="fallback"``, the default): unknown user + known movie gets
the movie's fallback mean, known user + unknown movie the user's, both unknown the
global mean; clipped to the rating scale and flagged ``cold_start``. ``"skip"`` drops
such pairs, ``"error"`` raises ``DataError`` with the count and first offending IDs.
"""

from movierec.serve_batch._artifacts import Artifacts, Prediction, load_artifacts
from movierec.serve_batch._catalog import score_catalog
from movierec.serve_batch._config import ScoreConfig
from movierec.serve_batch._pairs import score_file

__all__ = [
    "Artifacts",
    "Prediction",
    "ScoreConfig",
    "load_artifacts",
    "score_catalog",
    "score_file",
]
