"""The artifact contract between ``rec-export`` and ``rec-score``.

Torch-free on purpose: ``export`` imports it to write artifacts and ``serve_batch``
imports it to read them, so both sides agree on names, keys and the format version.
"""

from __future__ import annotations

#: Bumped when the layout of ``model.onnx`` metadata or ``id_mapping.json`` changes
#: incompatibly. The scorer refuses artifacts with another major format.
FORMAT_VERSION = 1

# --- file names inside the artifacts folder -------------------------------------------
MODEL_FILE = "model.onnx"
MAPPING_FILE = "id_mapping.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"
TEST_PAIRS_FILE = "test_pairs.parquet"
SEEN_PAIRS_FILE = "seen_pairs.parquet"

# --- ONNX graph I/O -------------------------------------------------------------------
#: Dense embedding row of the user, int64, shape ``[batch]``.
INPUT_USER = "user_idx"
#: Dense embedding row of the movie, int64, shape ``[batch]``.
INPUT_MOVIE = "movie_idx"
#: Predicted rating, float32, shape ``[batch]``, already clipped to the rating scale.
OUTPUT_RATING = "rating"
#: Score to rank a user's movies by (higher is better), float32, shape ``[batch]``: the
#: model's ranking head mixed with the rating, or the rating itself. Optional: a model
#: without it is ranked by ``rating``.
OUTPUT_RANK = "rank_score"
#: Name of the dynamic batch axis of every input and output.
BATCH_AXIS = "batch"

# --- metadata_props keys of model.onnx (all values are strings; JSON where noted) ----
META_FORMAT_VERSION = "movierec.format_version"
META_PACKAGE_VERSION = "movierec.package_version"
META_ARCH = "movierec.arch"  # JSON: architecture name and sizes
META_HYPERPARAMETERS = "movierec.hyperparameters"  # JSON: training configuration
META_METRICS = "movierec.metrics"  # JSON: {"val": {...}, "test": {...}} from training
META_DATA_FINGERPRINT = "movierec.data_fingerprint"
META_MAPPING_SHA256 = "movierec.mapping_sha256"  # SHA-256 of id_mapping.json's bytes
META_RATING_MIN = "movierec.rating_min"
META_RATING_MAX = "movierec.rating_max"
META_OPSET = "movierec.opset"
META_CREATED_AT = "movierec.created_at"  # ISO 8601, UTC
META_GRAPH = "movierec.graph"  # "folded" or "plain"

# --- id_mapping.json ------------------------------------------------------------------
# {
#   "format_version": 1,
#   "rating_scale": {"min": 1.0, "max": 5.0},
#   "user_index":  {"196": 0, ...},        # raw user ID (decimal string) -> embedding row
#   "movie_index": {"242": 0, ...},        # raw movie ID (decimal string) -> embedding row
#   "fallback": {
#       "global_mean": 3.53,               # unknown user and unknown movie
#       "user_mean":  {"196": 3.61, ...},  # known user, unknown movie (damped mean)
#       "movie_mean": {"242": 3.99, ...},  # unknown user, known movie (damped mean)
#       "damping": 5.0
#   },
#   "titles": {"242": "Kolya (1996)", ...} # optional, for people reading the tables
# }
# JSON keys are strings: a key is ``str(int(raw_id))``, so ``int(key)`` gives the integer
# ID of the input files back.
MAPPING_FORMAT_VERSION = "format_version"
MAPPING_RATING_SCALE = "rating_scale"
MAPPING_USER_INDEX = "user_index"
MAPPING_MOVIE_INDEX = "movie_index"
MAPPING_FALLBACK = "fallback"
MAPPING_TITLES = "titles"
FALLBACK_GLOBAL_MEAN = "global_mean"
FALLBACK_USER_MEAN = "user_mean"
FALLBACK_MOVIE_MEAN = "movie_mean"
FALLBACK_DAMPING = "damping"

# --- scorer table columns -------------------------------------------------------------
USER_COL = "user_id"
MOVIE_COL = "movie_id"
RATING_COL = "rating"
PREDICTION_COL = "predicted_rating"
COLD_START_COL = "cold_start"
RANK_COL = "rank"
TOPK_COLUMNS = (USER_COL, RANK_COL, MOVIE_COL, PREDICTION_COL)
