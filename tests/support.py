"""Helpers shared by the test packages (the one support module; no test module imports
another, and fixtures live in the conftest.py files).

* A tiny torch-free movierec-like model built with onnx.helper, plus its numpy twin.

  rating = clip(bias + user_bias[u] + movie_bias[m] + dot(P[u], Q[m]), min, max)
  rank_score = dot(R[u], S[m]) + c[m] + mix * rating     (only with ``rank_head=True``)

  Raw IDs are non-contiguous (10, 20, 35, ...) and embedding rows are shuffled, so a
  scorer that confuses raw IDs, sorted positions and rows gets wrong numbers. Some
  movies are exact twins (same parameters) so ties happen for real.
* Catalog mode checked by brute force; tiny training options; real-data lookup.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper, numpy_helper

from movierec.serve_batch import contract

if TYPE_CHECKING:
    import pandas as pd

OPSET = 17
RATING_MIN, RATING_MAX = 1.0, 5.0


#: Raw string IDs of the fakes built with string IDs: a few tricky ones (integer-looking,
#: leading zeros, non-ASCII, JSON punctuation), the rest in a common shape.
TRICKY_USERS = ("7", "007", "Zoë-😀", "a,b:c}", "Ω")
TRICKY_MOVIES = ("42", "ü", "sku:{x}")


def string_ids(values: np.ndarray, tricky: tuple[str, ...], template: str) -> list[str]:
    """String IDs for integer ``values``: the tricky ones first, then ``template``."""
    return [tricky[i] if i < len(tricky) else template.format(int(v)) for i, v in enumerate(values)]


@dataclass
class FakeArtifacts:
    folder: Path
    user_ids: np.ndarray  # raw IDs, sorted (int64, or str objects in code point order)
    movie_ids: np.ndarray
    user_rows: np.ndarray  # embedding row of user_ids[i]
    movie_rows: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    bu: np.ndarray
    bm: np.ndarray
    bias: float
    user_mean: dict[int, float]
    movie_mean: dict[int, float]
    global_mean: float
    metadata: dict[str, str] = field(default_factory=dict)
    rank_head: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None  # R, S, c, mix
    id_types: tuple[str, str] = (contract.ID_TYPE_INT, contract.ID_TYPE_INT)
    columns: tuple[str, str] = (contract.USER_COL, contract.MOVIE_COL)

    def as_ids(self, values, side: str) -> np.ndarray:
        """``values`` as the model's IDs of ``side``: int64, or str objects."""
        text = self.id_types[0 if side == "user" else 1] == contract.ID_TYPE_STRING
        return np.asarray(values, dtype=object if text else np.int64)

    @property
    def model_path(self) -> Path:
        return self.folder / contract.MODEL_FILE

    @property
    def mapping_path(self) -> Path:
        return self.folder / contract.MAPPING_FILE

    def expected(self, users, movies) -> tuple[np.ndarray, np.ndarray]:
        """Reference scores (float32) and cold_start flags with the documented fallback."""
        users = self.as_ids(users, "user")
        movies = self.as_ids(movies, "movie")
        umap = dict(zip(self.user_ids.tolist(), self.user_rows.tolist(), strict=True))
        mmap = dict(zip(self.movie_ids.tolist(), self.movie_rows.tolist(), strict=True))
        out = np.empty(users.size, dtype=np.float32)
        cold = np.zeros(users.size, dtype=bool)
        for i, (u, m) in enumerate(zip(users.tolist(), movies.tolist(), strict=True)):
            if u in umap and m in mmap:
                r, c = umap[u], mmap[m]
                val = (
                    np.float32(self.bias)
                    + self.bu[r]
                    + self.bm[c]
                    + np.sum(self.P[r] * self.Q[c], dtype=np.float32)
                )
            elif m in mmap:
                val, cold[i] = self.movie_mean[m], True
            elif u in umap:
                val, cold[i] = self.user_mean[u], True
            else:
                val, cold[i] = self.global_mean, True
            out[i] = np.clip(np.float32(val), RATING_MIN, RATING_MAX)
        return out, cold

    def expected_rank(self, users, movies) -> np.ndarray:
        """Reference rank scores: the rank head for known pairs, else the rating."""
        ratings, cold = self.expected(users, movies)
        if self.rank_head is None:
            return ratings
        R, S, c, mix = self.rank_head
        umap = dict(zip(self.user_ids.tolist(), self.user_rows.tolist(), strict=True))
        mmap = dict(zip(self.movie_ids.tolist(), self.movie_rows.tolist(), strict=True))
        out = ratings.copy()
        for i, (u, m) in enumerate(
            zip(
                self.as_ids(users, "user").tolist(),
                self.as_ids(movies, "movie").tolist(),
                strict=True,
            )
        ):
            if not cold[i]:
                r, k = umap[u], mmap[m]
                out[i] = (np.sum(R[r] * S[k], dtype=np.float32) + c[k]) + np.float32(mix) * ratings[
                    i
                ]
        return out


def build_fake_artifacts(
    folder: Path,
    *,
    n_users: int = 12,
    n_movies: int = 15,
    dim: int = 4,
    seed: int = 0,
    format_version: int = contract.FORMAT_VERSION,
    mapping_format_version: int | None = None,
    with_sha: bool = True,
    rank_head: bool = False,
    id_types: tuple[str, str] | None = None,
    columns: tuple[str, str] | None = None,
    compact: bool = False,
    user_keys: list[str] | None = None,
    movie_keys: list[str] | None = None,
) -> FakeArtifacts:
    """Write model.onnx + id_mapping.json into ``folder`` and return the reference.

    ``id_types`` / ``columns`` (user, movie) are written as the mapping's ``id_types`` and
    ``columns`` keys when given (else the mapping is an older one, without them); a
    string side gets the IDs of :func:`string_ids`, or ``user_keys`` / ``movie_keys``
    (distinct strings, one per user or movie) where given. ``compact``: the exporter's
    layout (``separators=(",", ":")``, ``ensure_ascii=False``) instead of an indented one."""
    n_users = len(user_keys) if user_keys is not None else n_users
    n_movies = len(movie_keys) if movie_keys is not None else n_movies
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    user_ids = np.cumsum(rng.integers(5, 20, n_users)).astype(np.int64) + 5  # 10, 20, 35 ...
    movie_ids = np.cumsum(rng.integers(3, 30, n_movies)).astype(np.int64) + 7
    user_rows = rng.permutation(n_users).astype(np.int64)
    movie_rows = rng.permutation(n_movies).astype(np.int64)
    P = rng.normal(0, 0.8, (n_users, dim)).astype(np.float32)
    Q = rng.normal(0, 0.8, (n_movies, dim)).astype(np.float32)
    bu = rng.normal(0, 0.5, n_users).astype(np.float32)
    bm = rng.normal(0, 0.5, n_movies).astype(np.float32)
    # twins: the movies in rows 1 and 2 equal row 0, so scores tie exactly
    for twin in (1, 2):
        if twin < n_movies:
            Q[twin], bm[twin] = Q[0], bm[0]
    bias = 3.4
    head = None
    if rank_head:
        R = rng.normal(0, 1.0, (n_users, 3)).astype(np.float32)
        S = rng.normal(0, 1.0, (n_movies, 3)).astype(np.float32)
        c = rng.normal(0, 0.5, n_movies).astype(np.float32)
        for twin in (1, 2):
            if twin < n_movies:
                S[twin], c[twin] = S[0], c[0]
        head = (R, S, c, 0.3)

    types = id_types or (contract.ID_TYPE_INT, contract.ID_TYPE_INT)
    if types[0] == contract.ID_TYPE_STRING:
        keys = user_keys or string_ids(user_ids, TRICKY_USERS, "c-{:05d}")
        user_ids, user_rows = _as_strings(keys, user_rows)
    if types[1] == contract.ID_TYPE_STRING:
        keys = movie_keys or string_ids(movie_ids, TRICKY_MOVIES, "tt{:07d}")
        movie_ids, movie_rows = _as_strings(keys, movie_rows)
    user_mean = {_key(u): round(float(rng.uniform(1.5, 4.8)), 3) for u in user_ids.tolist()}
    movie_mean = {_key(m): round(float(rng.uniform(0.5, 5.5)), 3) for m in movie_ids.tolist()}
    global_mean = 3.53
    mapping = {
        contract.MAPPING_FORMAT_VERSION: (
            format_version if mapping_format_version is None else mapping_format_version
        ),
        contract.MAPPING_RATING_SCALE: {"min": RATING_MIN, "max": RATING_MAX},
        contract.MAPPING_USER_INDEX: {
            str(u): int(r) for u, r in zip(user_ids.tolist(), user_rows.tolist(), strict=True)
        },
        contract.MAPPING_MOVIE_INDEX: {
            str(m): int(r) for m, r in zip(movie_ids.tolist(), movie_rows.tolist(), strict=True)
        },
        contract.MAPPING_FALLBACK: {
            contract.FALLBACK_GLOBAL_MEAN: global_mean,
            contract.FALLBACK_USER_MEAN: {str(k): v for k, v in user_mean.items()},
            contract.FALLBACK_MOVIE_MEAN: {str(k): v for k, v in movie_mean.items()},
            contract.FALLBACK_DAMPING: 5.0,
        },
        contract.MAPPING_TITLES: {str(m): f"Movie {m} (1999)" for m in movie_ids.tolist()},
    }
    if id_types is not None:
        mapping[contract.MAPPING_ID_TYPES] = {"user": types[0], "movie": types[1]}
    if columns is not None:
        mapping[contract.MAPPING_COLUMNS] = {"user": columns[0], "movie": columns[1]}
    if compact:
        text = json.dumps(mapping, ensure_ascii=False, separators=(",", ":")) + "\n"
    else:
        text = json.dumps(mapping, indent=1)
    mapping_bytes = text.encode()
    (folder / contract.MAPPING_FILE).write_bytes(mapping_bytes)

    metadata = {
        contract.META_FORMAT_VERSION: str(format_version),
        contract.META_PACKAGE_VERSION: "0.1.0",
        contract.META_ARCH: json.dumps({"name": "fake-mf", "dim": dim}),
        contract.META_RATING_MIN: str(RATING_MIN),
        contract.META_RATING_MAX: str(RATING_MAX),
        contract.META_OPSET: str(OPSET),
        contract.META_CREATED_AT: "2024-01-01T00:00:00+00:00",
        contract.META_GRAPH: "plain",
    }
    if with_sha:
        metadata[contract.META_MAPPING_SHA256] = hashlib.sha256(mapping_bytes).hexdigest()
    model = build_mf_model(P, Q, bu, bm, bias, metadata, head)
    onnx.save(model, str(folder / contract.MODEL_FILE))
    return FakeArtifacts(
        folder=folder,
        user_ids=user_ids,
        movie_ids=movie_ids,
        user_rows=user_rows,
        movie_rows=movie_rows,
        P=P,
        Q=Q,
        bu=bu,
        bm=bm,
        bias=bias,
        user_mean=user_mean,
        movie_mean=movie_mean,
        global_mean=global_mean,
        metadata=metadata,
        rank_head=head,
        id_types=types,
        columns=columns or (contract.USER_COL, contract.MOVIE_COL),
    )


def _as_strings(keys: list[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """String IDs ``keys`` in code point order, with their rows in the same order."""
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return np.array([keys[i] for i in order], dtype=object), rows[order]


def _key(value) -> int | str:
    return value if isinstance(value, str) else int(value)


def build_mf_model(
    P, Q, bu, bm, bias: float, metadata: dict[str, str], head=None
) -> onnx.ModelProto:
    """Matrix factorisation with biases as an ONNX graph (Gather/Mul/ReduceSum/Add/Clip),
    with a second output ``rank_score`` when ``head`` = (R, S, c, mix) is given."""
    inits = [
        numpy_helper.from_array(P, "P"),
        numpy_helper.from_array(Q, "Q"),
        numpy_helper.from_array(bu, "bu"),
        numpy_helper.from_array(bm, "bm"),
        numpy_helper.from_array(np.array(bias, dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(RATING_MIN, dtype=np.float32), "rmin"),
        numpy_helper.from_array(np.array(RATING_MAX, dtype=np.float32), "rmax"),
    ]
    nodes = [
        helper.make_node("Gather", ["P", contract.INPUT_USER], ["pu"], axis=0),
        helper.make_node("Gather", ["Q", contract.INPUT_MOVIE], ["qm"], axis=0),
        helper.make_node("Mul", ["pu", "qm"], ["prod"]),
        helper.make_node("ReduceSum", ["prod", "axis1"], ["dot"], keepdims=0),
        helper.make_node("Gather", ["bu", contract.INPUT_USER], ["ub"], axis=0),
        helper.make_node("Gather", ["bm", contract.INPUT_MOVIE], ["mb"], axis=0),
        helper.make_node("Add", ["bias", "ub"], ["s1"]),
        helper.make_node("Add", ["s1", "mb"], ["s2"]),
        helper.make_node("Add", ["s2", "dot"], ["raw"]),
        helper.make_node("Clip", ["raw", "rmin", "rmax"], [contract.OUTPUT_RATING]),
    ]
    batch = [contract.BATCH_AXIS]
    outputs = [helper.make_tensor_value_info(contract.OUTPUT_RATING, TensorProto.FLOAT, batch)]
    if head is not None:
        R, S, c, mix = head
        inits += [
            numpy_helper.from_array(R, "R"),
            numpy_helper.from_array(S, "S"),
            numpy_helper.from_array(c, "c"),
            numpy_helper.from_array(np.array(mix, dtype=np.float32), "mix"),
        ]
        nodes += [
            helper.make_node("Gather", ["R", contract.INPUT_USER], ["ru"], axis=0),
            helper.make_node("Gather", ["S", contract.INPUT_MOVIE], ["sm"], axis=0),
            helper.make_node("Mul", ["ru", "sm"], ["rprod"]),
            helper.make_node("ReduceSum", ["rprod", "axis1"], ["rdot"], keepdims=0),
            helper.make_node("Gather", ["c", contract.INPUT_MOVIE], ["cm"], axis=0),
            helper.make_node("Add", ["rdot", "cm"], ["r1"]),
            helper.make_node("Mul", ["mix", contract.OUTPUT_RATING], ["mixed"]),
            helper.make_node("Add", ["r1", "mixed"], [contract.OUTPUT_RANK]),
        ]
        outputs.append(
            helper.make_tensor_value_info(contract.OUTPUT_RANK, TensorProto.FLOAT, batch)
        )
    graph = helper.make_graph(
        nodes,
        "fake_mf",
        [
            helper.make_tensor_value_info(contract.INPUT_USER, TensorProto.INT64, batch),
            helper.make_tensor_value_info(contract.INPUT_MOVIE, TensorProto.INT64, batch),
        ],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def write_table(path: Path, table) -> Path:
    """Write a table as Parquet, CSV or gzip CSV, by file ending."""
    path = Path(path)
    if isinstance(table, dict):
        table = pa.table(table)
    elif not isinstance(table, pa.Table):  # a pandas DataFrame
        table = pa.Table.from_pandas(table, preserve_index=False)
    name = path.name
    if name.endswith(".parquet"):
        pq.write_table(table, path)
    elif name.endswith(".csv.gz"):
        with pa.CompressedOutputStream(str(path), "gzip") as sink:
            pacsv.write_csv(table, sink)
    elif name.endswith(".csv"):
        pacsv.write_csv(table, path)
    else:
        raise ValueError(path)
    return path


def read_table(path: Path) -> pa.Table:
    """Read back a Parquet, CSV or gzip CSV output."""
    path = Path(path)
    if path.name.endswith(".parquet"):
        return pq.read_table(path)
    return pacsv.read_csv(path)


def list_dir(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden temp files included."""
    return sorted(p.name for p in Path(folder).iterdir())


def build_fake_catalog(
    fake: FakeArtifacts,
    path: Path | None = None,
    *,
    model_sha256: str | None = None,
    mapping_sha256: str | None = None,
    score_offset: np.ndarray | None = None,
    n_movies: int | None = None,
    layout: int = contract.CATALOG_FORMAT,
) -> Path:
    """Write the catalog graph of ``fake`` (``catalog.onnx`` beside its model by default).

    Its bound of each pair's rank score: without a rank head the exact rating (MatMul
    where the pairs model has Mul + ReduceSum, so the two round differently, as real
    exports do); with one the ranking head plus ``mix`` x the scale's top rating, a loose
    bound (many candidates, several rounds). Excluded pairs get -inf (ScatterND) and TopK
    keeps the K highest. ``score_offset`` (per movie row) is added to the bounds to mimic
    a graph that drifts from the model; ``layout`` 1 writes the metadata of an older
    graph layout.
    """
    path = Path(path) if path is not None else fake.folder / contract.CATALOG_FILE
    n = fake.Q.shape[0] if n_movies is None else n_movies
    Q = np.resize(fake.Q, (n, fake.Q.shape[1]))
    bm = np.resize(fake.bm, n)
    inits = [
        numpy_helper.from_array(fake.P, "P"),
        numpy_helper.from_array(np.ascontiguousarray(Q.T), "QT"),
        numpy_helper.from_array(fake.bu, "bu"),
        numpy_helper.from_array(bm, "bm"),
        numpy_helper.from_array(np.array(fake.bias, dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "k_shape"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(np.array(RATING_MIN, dtype=np.float32), "rmin"),
        numpy_helper.from_array(np.array(RATING_MAX, dtype=np.float32), "rmax"),
        numpy_helper.from_array(np.array([-np.inf], dtype=np.float32), "neg_inf"),
    ]
    nodes = [
        helper.make_node("Gather", ["P", contract.INPUT_USER], ["pu"], axis=0),
        helper.make_node("MatMul", ["pu", "QT"], ["dot"]),
        helper.make_node("Gather", ["bu", contract.INPUT_USER], ["ub0"], axis=0),
        helper.make_node("Unsqueeze", ["ub0", "axis1"], ["ub"]),
        helper.make_node("Add", ["bias", "ub"], ["s1"]),
        helper.make_node("Add", ["s1", "bm"], ["s2"]),
        helper.make_node("Add", ["s2", "dot"], ["raw"]),
        helper.make_node("Clip", ["raw", "rmin", "rmax"], ["rating"]),
    ]
    bound = "rating"
    if fake.rank_head is not None:
        R, S, c, mix = fake.rank_head
        inits += [
            numpy_helper.from_array(R, "R"),
            numpy_helper.from_array(np.ascontiguousarray(np.resize(S, (n, S.shape[1])).T), "ST"),
            numpy_helper.from_array(np.resize(c, n), "c"),
            numpy_helper.from_array(np.array(mix * RATING_MAX, dtype=np.float32), "mix_top"),
        ]
        nodes += [
            helper.make_node("Gather", ["R", contract.INPUT_USER], ["ru"], axis=0),
            helper.make_node("MatMul", ["ru", "ST"], ["rdot"]),
            helper.make_node("Add", ["rdot", "c"], ["r1"]),
            helper.make_node("Add", ["r1", "mix_top"], ["rank_bound"]),
        ]
        bound = "rank_bound"
    if score_offset is not None:
        inits.append(numpy_helper.from_array(score_offset.astype(np.float32), "offset"))
        nodes.append(helper.make_node("Add", [bound, "offset"], ["shifted"]))
        bound = "shifted"
    nodes += [
        helper.make_node("Shape", [bound], ["bound_shape"]),
        helper.make_node("Reshape", [bound, "flat_shape"], ["flat"]),
        helper.make_node("Unsqueeze", [contract.INPUT_EXCLUDED, "axis1"], ["where"]),
        helper.make_node("Shape", [contract.INPUT_EXCLUDED], ["n_excluded"]),
        helper.make_node("Expand", ["neg_inf", "n_excluded"], ["fill"]),
        helper.make_node("ScatterND", ["flat", "where", "fill"], ["flat_masked"]),
        helper.make_node("Reshape", ["flat_masked", "bound_shape"], ["masked"]),
        helper.make_node("Reshape", [contract.INPUT_K, "k_shape"], ["k1"]),
        helper.make_node(
            "TopK", ["masked", "k1"], [contract.OUTPUT_TOP_BOUND, contract.OUTPUT_TOP_MOVIE], axis=1
        ),
    ]
    users = [contract.USERS_AXIS]
    top = [contract.USERS_AXIS, "k"]
    graph = helper.make_graph(
        nodes,
        "fake_catalog",
        [
            helper.make_tensor_value_info(contract.INPUT_USER, TensorProto.INT64, users),
            helper.make_tensor_value_info(
                contract.INPUT_EXCLUDED, TensorProto.INT64, [contract.EXCLUDED_AXIS]
            ),
            helper.make_tensor_value_info(contract.INPUT_K, TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info(contract.OUTPUT_TOP_MOVIE, TensorProto.INT64, top),
            helper.make_tensor_value_info(contract.OUTPUT_TOP_BOUND, TensorProto.FLOAT, top),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    metadata = dict(fake.metadata)
    metadata[contract.META_GRAPH] = "catalog"
    metadata[contract.META_MAPPING_SHA256] = (
        mapping_sha256 or hashlib.sha256(fake.mapping_path.read_bytes()).hexdigest()
    )
    metadata[contract.META_MODEL_SHA256] = (
        model_sha256 or hashlib.sha256(fake.model_path.read_bytes()).hexdigest()
    )
    if layout >= 2:
        metadata[contract.META_CATALOG] = json.dumps(
            {"format": layout, "movies": n, "bound": "interval", "call_pairs": 64}
        )
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


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


def brute_force_catalog(fake, users, exclude: pd.DataFrame | None, k: int) -> pd.DataFrame:
    """Every user x every movie through ``predict_ids``, minus exclusions, sorted in Python."""
    import pandas as pd

    from movierec.serve_batch import load_artifacts

    arts = load_artifacts(fake.model_path, fake.mapping_path)
    rows = []
    seen = set() if exclude is None else set(zip(exclude.user_id, exclude.movie_id, strict=True))
    for u in sorted(set(users)):
        movies = [m for m in fake.movie_ids.tolist() if (u, m) not in seen]
        if not movies:
            continue
        pred = arts.predict_ids(np.full(len(movies), u), np.array(movies))
        order = sorted(range(len(movies)), key=lambda i: (-pred.rank_scores[i], movies[i]))[:k]
        for rank, i in enumerate(order, 1):
            rows.append((u, rank, movies[i], pred.ratings[i], pred.cold_start[i]))
    return pd.DataFrame(
        rows, columns=["user_id", "rank", "movie_id", "predicted_rating", "cold_start"]
    )


def run_catalog(fake, tmp_path: Path, users, *, exclude=None, **kw) -> tuple[pd.DataFrame, dict]:
    from movierec.serve_batch import ScoreConfig, score_catalog

    inp = write_table(
        tmp_path / "users.csv", {"user_id": np.asarray(users), "x": np.arange(len(users))}
    )
    ex_path = None
    if exclude is not None:
        ex_path = write_table(tmp_path / "rated.parquet", exclude)
    out = tmp_path / "top.parquet"
    manifest = score_catalog(
        ScoreConfig.build(
            input=inp,
            output=out,
            artifacts=fake.folder,
            all_movies=True,
            exclude=ex_path,
            quiet=True,
            **kw,
        )
    )
    return read_table(out).to_pandas(), manifest


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    import pandas as pd

    cols = ["user_id", "rank", "movie_id", "cold_start"]
    pd.testing.assert_frame_equal(got[cols], want[cols], check_dtype=False)
    np.testing.assert_allclose(got.predicted_rating, want.predicted_rating, atol=1e-5)


#: The TINY training of tests/conftest.py as rec-nightly flags, on one torch thread (the
#: default thread count ran 10x slower on a busy 2-core machine).
TINY_ARGS = [
    "--epochs",
    str(TINY["epochs"]),
    "--batch-size",
    str(TINY["batch_size"]),
    "--embedding-dim",
    str(TINY["embedding_dim"]),
    "--hidden",
    ",".join(map(str, TINY["hidden"])),
    "--factors",
    str(TINY["factors"]),
    "--patience",
    str(TINY["patience"]),
    "--threads",
    "1",
]
#: A candidate deliberately worse than TINY: one epoch at a learning rate too small to
#: move the weights far from their start.
WORSE_ARGS = ["--epochs", "1", "--lr", "1e-5"]


def run_nightly_cli(data: Path, home: Path, *extra: str, quiet: bool = True) -> tuple[int, str]:
    """rec-nightly in this process through the real exit-code mapping and log lines:
    (code, stderr)."""
    argv = ["--data", str(data), "--home", str(home), *TINY_ARGS, *extra]
    if quiet:
        argv.append("--quiet")
    return run_nightly_args(argv)


def run_nightly_args(argv: list[str]) -> tuple[int, str]:
    """``rec-nightly ARGV`` in this process, as the script runs it: (code, stderr)."""
    from movierec.nightly.cli import run

    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        code = run(argv)
    return code, buffer.getvalue()


def link(path: Path) -> str | None:
    """Where a symlink points (None if there is none)."""
    return os.readlink(path) if path.is_symlink() else None


def assert_self_contained_html(html: str) -> None:
    """A page that fetches nothing: no script, stylesheet link, import or external URL;
    every reference (``href``, ``src``, ``url(...)``) points inside the page."""
    import re

    lowered = html.lower()
    for banned in ("<script", "<link", "@import", "<iframe", "<img", "<object", "<embed"):
        assert banned not in lowered, banned
    for ref in re.findall(r"""(?:href|src)\s*=\s*["']([^"']*)["']""", html):
        assert ref.startswith("#"), ref
    for ref in re.findall(r"url\(\s*([^)]*)\)", html):
        assert ref.strip("'\" ").startswith("#"), ref


# --- PostgreSQL for the database tests ---------------------------------------------------
#: A server the database tests use (any database on it; each test gets its own database).
PG_URI_ENV = "MOVIEREC_TEST_PG"
#: "1": the database tests fail instead of skipping when no server can be had (CI sets it).
PG_REQUIRE_ENV = "MOVIEREC_REQUIRE_PG"
#: "0": never start a throwaway server (use $MOVIEREC_TEST_PG or skip).
PG_START_ENV = "MOVIEREC_TEST_PG_START"
PG_SERVER_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "pg_server"


@contextlib.contextmanager
def postgres_server():
    """``(uri, why)``: $MOVIEREC_TEST_PG, else a throwaway server started (and stopped
    afterwards) by ``.ci/pg_server``, as CI does; ``(None, why)`` where neither can be had."""
    import subprocess

    given = os.environ.get(PG_URI_ENV)
    if given:
        yield given, None
        return
    if os.environ.get(PG_START_ENV) == "0":
        yield None, f"no server: {PG_URI_ENV} is unset and {PG_START_ENV}=0"
        return
    env = {**os.environ, "PG_SERVER_NO_INSTALL": "1"}
    started = subprocess.run(
        [str(PG_SERVER_SCRIPT), "start"], capture_output=True, text=True, env=env, check=False
    )
    if started.returncode != 0:
        yield None, f"no server: {PG_URI_ENV} is unset and {started.stderr.strip()}"
        return
    folder, uri = started.stdout.split()
    try:
        yield uri, None
    finally:
        subprocess.run([str(PG_SERVER_SCRIPT), "stop", folder], capture_output=True, check=False)


def pg_admin(uri: str, *statements: str) -> None:
    """Run statements in autocommit (CREATE/DROP DATABASE cannot run in a transaction)."""
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def pg_query(uri: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one query (the PostgreSQL driver, as a test's own client)."""
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(sql, params or None)
        return cursor.fetchall()


def with_database(uri: str, name: str) -> str:
    """``uri`` naming the database ``name`` instead."""
    base, _, rest = uri.rpartition("/")
    query = rest.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")
