"""Shared pieces of the scorer benchmarks: synthetic artifacts and pairs files, no torch.

The synthetic model has the seed notebook's architecture and size (user embedding
943x100, movie embedding 1682x100, concat -> Linear(200,128) -> ReLU ->
Linear(128,64) -> ReLU -> Linear(64,1) -> clip) with random weights, plus the small
``rank_score`` head rec-export graphs carry, built with onnx.helper, so the benchmarks
run without PyTorch or a trained model.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from movierec.serve_batch import contract  # noqa: E402

N_USERS, N_MOVIES, EMB = 943, 1682, 100
HIDDEN = (128, 64)
RANK_FACTORS = 16  # the exporter's graphs also output rank_score (a small ranking head)
OPSET = 17


def build_synthetic_artifacts(folder: Path, seed: int = 0) -> Path:
    """Write model.onnx + id_mapping.json of the seed architecture (random weights)."""
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def linear(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        w = rng.normal(0, np.sqrt(2.0 / n_in), (n_out, n_in)).astype(np.float32)
        return w, rng.normal(0, 0.01, n_out).astype(np.float32)

    user_emb = rng.normal(0, 0.5, (N_USERS, EMB)).astype(np.float32)
    movie_emb = rng.normal(0, 0.5, (N_MOVIES, EMB)).astype(np.float32)
    w1, b1 = linear(2 * EMB, HIDDEN[0])
    w2, b2 = linear(HIDDEN[0], HIDDEN[1])
    w3, b3 = linear(HIDDEN[1], 1)
    b3 += 3.5  # centre the random outputs inside the rating scale
    inits = [
        numpy_helper.from_array(user_emb, "user_emb"),
        numpy_helper.from_array(movie_emb, "movie_emb"),
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
        numpy_helper.from_array(w3, "w3"),
        numpy_helper.from_array(b3, "b3"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "rmin"),
        numpy_helper.from_array(np.array(5.0, dtype=np.float32), "rmax"),
        numpy_helper.from_array(
            rng.normal(0, 0.3, (N_USERS, RANK_FACTORS)).astype(np.float32), "rank_u"
        ),
        numpy_helper.from_array(
            rng.normal(0, 0.3, (N_MOVIES, RANK_FACTORS)).astype(np.float32), "rank_m"
        ),
        numpy_helper.from_array(rng.normal(0, 0.1, N_MOVIES).astype(np.float32), "rank_b"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "mix"),
    ]
    nodes = [
        helper.make_node("Gather", ["user_emb", contract.INPUT_USER], ["eu"], axis=0),
        helper.make_node("Gather", ["movie_emb", contract.INPUT_MOVIE], ["em"], axis=0),
        helper.make_node("Concat", ["eu", "em"], ["x"], axis=1),
        helper.make_node("Gemm", ["x", "w1", "b1"], ["g1"], transB=1),
        helper.make_node("Relu", ["g1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "w2", "b2"], ["g2"], transB=1),
        helper.make_node("Relu", ["g2"], ["h2"]),
        helper.make_node("Gemm", ["h2", "w3", "b3"], ["g3"], transB=1),
        helper.make_node("Squeeze", ["g3", "axis1"], ["raw"]),
        helper.make_node("Clip", ["raw", "rmin", "rmax"], [contract.OUTPUT_RATING]),
        helper.make_node("Gather", ["rank_u", contract.INPUT_USER], ["ru"], axis=0),
        helper.make_node("Gather", ["rank_m", contract.INPUT_MOVIE], ["rm"], axis=0),
        helper.make_node("Mul", ["ru", "rm"], ["rprod"]),
        helper.make_node("ReduceSum", ["rprod", "axis1"], ["rdot"], keepdims=0),
        helper.make_node("Gather", ["rank_b", contract.INPUT_MOVIE], ["rb"], axis=0),
        helper.make_node("Add", ["rdot", "rb"], ["r1"]),
        helper.make_node("Mul", ["mix", contract.OUTPUT_RATING], ["mixed"]),
        helper.make_node("Add", ["r1", "mixed"], [contract.OUTPUT_RANK]),
    ]
    batch = [contract.BATCH_AXIS]
    graph = helper.make_graph(
        nodes,
        "seed_mlp",
        [
            helper.make_tensor_value_info(contract.INPUT_USER, TensorProto.INT64, batch),
            helper.make_tensor_value_info(contract.INPUT_MOVIE, TensorProto.INT64, batch),
        ],
        [
            helper.make_tensor_value_info(contract.OUTPUT_RATING, TensorProto.FLOAT, batch),
            helper.make_tensor_value_info(contract.OUTPUT_RANK, TensorProto.FLOAT, batch),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8

    save_synthetic(
        folder,
        model,
        N_USERS,
        N_MOVIES,
        {"name": "seed-mlp", "embedding": EMB, "hidden": list(HIDDEN)},
        rng,
    )
    return folder


def save_synthetic(
    folder: Path,
    model,
    n_users: int,
    n_movies: int,
    arch: dict,
    rng: np.random.Generator,
    check: bool = True,
) -> None:
    """Write ``model`` (an onnx.ModelProto) beside an ID mapping as rec-export would: raw IDs
    1..n on rows 0..n-1, random fallback means, and the metadata the scorer checks.
    ``check=False`` skips ``onnx.checker`` (slow on the 1M-user model)."""
    import onnx
    from onnx import helper

    user_ids = np.arange(1, n_users + 1)
    movie_ids = np.arange(1, n_movies + 1)

    def means(ids: np.ndarray, low: float, high: float) -> dict[str, float]:
        values = np.round(rng.uniform(low, high, ids.size), 3).tolist()
        return dict(zip(map(str, ids.tolist()), values, strict=True))

    mapping = {
        contract.MAPPING_FORMAT_VERSION: contract.FORMAT_VERSION,
        contract.MAPPING_RATING_SCALE: {"min": 1.0, "max": 5.0},
        contract.MAPPING_USER_INDEX: {str(i): i - 1 for i in user_ids.tolist()},
        contract.MAPPING_MOVIE_INDEX: {str(i): i - 1 for i in movie_ids.tolist()},
        contract.MAPPING_FALLBACK: {
            contract.FALLBACK_GLOBAL_MEAN: 3.53,
            contract.FALLBACK_USER_MEAN: means(user_ids, 2, 4.5),
            contract.FALLBACK_MOVIE_MEAN: means(movie_ids, 1, 5),
            contract.FALLBACK_DAMPING: 5.0,
        },
    }
    mapping_bytes = json.dumps(mapping).encode()
    (folder / contract.MAPPING_FILE).write_bytes(mapping_bytes)
    helper.set_model_props(
        model,
        {
            contract.META_FORMAT_VERSION: str(contract.FORMAT_VERSION),
            contract.META_MAPPING_SHA256: hashlib.sha256(mapping_bytes).hexdigest(),
            contract.META_RATING_MIN: "1.0",
            contract.META_RATING_MAX: "5.0",
            contract.META_OPSET: str(OPSET),
            contract.META_ARCH: json.dumps(arch),
            contract.META_GRAPH: "plain",
            contract.META_CREATED_AT: "synthetic",
        },
    )
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, str(folder / contract.MODEL_FILE))


def read_mapping_ids(artifacts: Path) -> tuple[np.ndarray, np.ndarray]:
    """Raw user and movie IDs of an artifacts folder (synthetic or a real export)."""
    mapping = json.loads((artifacts / contract.MAPPING_FILE).read_text())
    users = np.array(sorted(int(k) for k in mapping[contract.MAPPING_USER_INDEX]), np.int64)
    movies = np.array(sorted(int(k) for k in mapping[contract.MAPPING_MOVIE_INDEX]), np.int64)
    return users, movies


def write_pairs(path: Path, n: int, users: np.ndarray, movies: np.ndarray, seed: int = 1) -> Path:
    """A Parquet file of ``n`` random known pairs with a rating column, written in chunks."""
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == n:
        return path  # reuse: generating 20 million rows takes a while
    rng = np.random.default_rng(seed)
    schema = pa.schema(
        [("user_id", pa.int64()), ("movie_id", pa.int64()), ("rating", pa.float32())]
    )
    tmp = path.with_name(path.name + ".partial")
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, n, 1 << 20):
            m = min(1 << 20, n - start)
            writer.write_table(
                pa.table(
                    {
                        "user_id": rng.choice(users, m),
                        "movie_id": rng.choice(movies, m),
                        "rating": rng.integers(1, 6, m).astype(np.float32),
                    },
                    schema=schema,
                )
            )
    tmp.replace(path)
    return path


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
