"""Torch-free batch scoring of exported movierec models (``rec-score``).

Python API::

    from movierec.serve_batch import load_model

    model = load_model("artifacts")              # checks the mapping's SHA-256
    scores = model.predict(df)                   # DataFrame or pyarrow Table -> same type
    recs = model.recommend(users, k=10, exclude=seen)

Files, as ``rec-score`` does (either engine)::

    from movierec.serve_batch import ScoreConfig, score

    manifest = score(ScoreConfig.build("pairs.parquet", "out.parquet", top_k=10))

Unknown IDs (``on_unknown="fallback"``, the default): unknown user + known movie gets
the movie's fallback mean, known user + unknown movie the user's, both unknown the
global mean; clipped to the rating scale and flagged ``cold_start``. ``"skip"`` drops
such pairs, ``"error"`` raises ``DataError`` with the count and first offending IDs.
"""

from movierec.serve_batch._artifacts import Artifacts, Prediction, load_artifacts
from movierec.serve_batch._config import RayOptions, RuntimeOptions, ScoreConfig, ScoreJob
from movierec.serve_batch._driver import score, score_catalog, score_file
from movierec.serve_batch._model import Model, load_model
from movierec.serve_batch.errors import ArtifactError, DataError, MovieRecError, UsageError

__all__ = [
    "ArtifactError",
    "Artifacts",
    "DataError",
    "Model",
    "MovieRecError",
    "Prediction",
    "RayOptions",
    "RuntimeOptions",
    "ScoreConfig",
    "ScoreJob",
    "UsageError",
    "load_artifacts",
    "load_model",
    "score",
    "score_catalog",
    "score_file",
]
