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
#: Optional second graph for catalog mode (top-k of a block of users x every movie).
CATALOG_FILE = "catalog.onnx"
MAPPING_FILE = "id_mapping.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"
TEST_PAIRS_FILE = "test_pairs.parquet"
#: The train and validation pairs (what the ranking protocol's candidates leave out);
#: with TEST_PAIRS_FILE, every rating of the data. Named ``seen_pairs.parquet`` before.
TRAIN_VAL_PAIRS_FILE = "train_val_pairs.parquet"

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

# --- catalog.onnx I/O (same user input name as model.onnx) ----------------------------
# The catalog graph finds each user's candidates cheaply: for a block of users against
# every movie it computes an UPPER BOUND of each pair's rank score (a few matrix
# products, not the network) and returns the movies with the highest bounds. The
# scorer scores candidates through model.onnx until no other movie can reach the K-th
# best score (see movierec.serve_batch._catalog).
#: Pairs never to recommend, int64 ``[pairs]``, sorted: ``user * n_movies + movie_row``
#: where ``user`` is the position in the call's ``user_idx``; may be empty.
INPUT_EXCLUDED = "excluded"
#: How many movies to return per user, int64 scalar, ``1 <= k <= n_movies``.
INPUT_K = "k"
#: Embedding rows of the movies with the highest bounds, int64 ``[users, k]``, highest
#: first; an excluded pair comes after every other, with a bound of ``-inf``.
OUTPUT_TOP_MOVIE = "top_movie_idx"
#: Their bounds, float32 ``[users, k]``, non-increasing along a row: the pair's
#: rank_score from model.onnx is at most the bound (up to float32 rounding).
OUTPUT_TOP_BOUND = "top_rank_bound"
#: Name of the dynamic user axis of catalog.onnx, and of its exclusion axis.
USERS_AXIS = "users"
EXCLUDED_AXIS = "pairs"
#: The catalog graph layout written by this rec-export; older graphs (a bool exclusion
#: mask and top ratings) are ignored with a warning: catalog mode then scores every pair.
CATALOG_FORMAT = 2

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
META_IR_VERSION = "movierec.ir_version"  # the ONNX IR version the file was written with
META_CREATED_AT = "movierec.created_at"  # ISO 8601, UTC
META_GRAPH = "movierec.graph"  # "folded" or "plain"; "catalog" in catalog.onnx
#: catalog.onnx only: SHA-256 of the model.onnx exported with it (they are used together).
META_MODEL_SHA256 = "movierec.model_sha256"
#: catalog.onnx only, JSON: {"format": CATALOG_FORMAT, "movies": n_movies, "bound":
#: "interval" or "exact", "call_pairs": users x movies per call that keeps its
#: intermediate arrays small}.
META_CATALOG = "movierec.catalog"

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
# JSON keys are strings. For integer IDs a key is ``str(int(raw_id))``, so ``int(key)``
# gives the integer ID of the input files back; for string IDs a key is the ID exactly
# as the data held it.
#
# Added for users' own data (the format version stays 1: a mapping without them is an
# older one, and means integer IDs under the columns user_id and movie_id):
#   "id_types": {"user": "int" | "string", "movie": "int" | "string"},
#   "columns":  {"user": "customer_id", "movie": "sku"}   # the training data's ID columns
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
#: The ID type of each side (``{"user": ..., "movie": ...}``): what the scorer reads and
#: writes in the ID columns. Absent: both ``ID_TYPE_INT``.
MAPPING_ID_TYPES = "id_types"
#: The ID column names of the training data (``{"user": ..., "movie": ...}``): the
#: scorer's default ID columns, and the names of its output columns. Absent: ``USER_COL``
#: and ``MOVIE_COL``.
MAPPING_COLUMNS = "columns"
#: Integer IDs (int64 in every table).
ID_TYPE_INT = "int"
#: String IDs (Arrow ``string`` in every table), matched exactly (no trimming, case kept).
ID_TYPE_STRING = "string"
ID_TYPES = (ID_TYPE_INT, ID_TYPE_STRING)

# --- scorer table columns -------------------------------------------------------------
USER_COL = "user_id"
MOVIE_COL = "movie_id"
RATING_COL = "rating"
PREDICTION_COL = "predicted_rating"
COLD_START_COL = "cold_start"
RANK_COL = "rank"
#: Top-k tables: the value the ranking sorts by (the model's ``rank_score``, or the
#: rating for a model without one; a cold-start pair's fallback rating).
SCORE_COL = "score"
#: Top-k tables with ``--titles``: the movie's title from the ID mapping (null where the
#: training data had none).
TITLE_COL = "title"
TOPK_COLUMNS = (USER_COL, RANK_COL, MOVIE_COL, PREDICTION_COL, SCORE_COL, COLD_START_COL)
