"""Prove that the exported model scores like PyTorch, through the scorer's public API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import torch

from movierec.serve_batch import Artifacts, Model, RuntimeOptions, contract, load_artifacts
from movierec.train.checkpoint import Checkpoint
from movierec.train.data import Columns
from movierec.train.fallback import Fallback
from movierec.train.metrics import rating_errors
from movierec.train.pipeline import predict_known
from movierec.train.split import Part


@dataclass
class ParityCheck:
    name: str
    pairs: int
    max_abs_diff: float
    passed: bool


@dataclass
class ParityReport:
    atol: float
    checks: list[ParityCheck] = field(default_factory=list)
    onnx_test_rmse: float = float("nan")
    train_test_rmse: float = float("nan")
    #: Test-split pairs behind ``onnx_test_rmse``, of how many (fewer: a seeded sample).
    test_pairs_checked: int = 0
    test_pairs: int = 0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.checks), default=0.0)

    def failures(self) -> list[ParityCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(passed=self.passed, max_abs_diff=self.max_abs_diff)
        return d


@torch.no_grad()
def torch_predict(
    ckpt: Checkpoint, user_idx: np.ndarray, movie_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's ``(rating, rank_score)`` for dense index pairs: the reference side."""
    model = ckpt.model.eval()
    rating, rank = model.predict_with_rank(torch.from_numpy(user_idx), torch.from_numpy(movie_idx))
    return rating.numpy(), rank.numpy()


def parity_pairs(known: Fallback, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random known pairs plus the first and last known rows of both tables."""
    users, movies = np.flatnonzero(known.known_users), np.flatnonzero(known.known_movies)
    rng = np.random.default_rng(seed)
    u = users[rng.integers(0, users.size, n, dtype=np.int64)]
    m = movies[rng.integers(0, movies.size, n, dtype=np.int64)]
    edges_u = users[[0, 0, -1, -1]]
    edges_m = movies[[0, -1, 0, -1]]
    return np.concatenate([edges_u, u]), np.concatenate([edges_m, m])


def test_sample(n_test: int, limit: int, seed: int) -> np.ndarray:
    """Rows of the test split to check: all of them up to ``limit``, else a seeded sample
    (sorted, so the check reads the split in order)."""
    if n_test <= limit:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed + 2).choice(n_test, limit, replace=False))


def check_parity(
    ckpt: Checkpoint,
    arts: Artifacts,
    atol: float,
    n_random: int,
    seed: int = 0,
    n_test: int = 50_000,
    known: Fallback | None = None,
) -> ParityReport:
    """Score the test split (a seeded sample of ``n_test`` pairs where it is larger) and
    random pairs on both sides; collect every failure. Every part is bounded, so the
    check costs the same at any data size.

    The ONNX side goes through ``Artifacts.predict_ids`` (raw IDs in, the mapping applied),
    the very call ``rec-score`` makes per batch, at batch sizes unlike the export's.
    ``known``: what the model knows (``Checkpoint.fallback``); test pairs of users or movies
    it does not know are scored by the fallback on both sides, as the evaluation did.
    """
    known = known or ckpt.fallback()
    vocab, test = ckpt.split.vocab, ckpt.split.test
    rows = test_sample(len(test), n_test, seed)
    report = ParityReport(
        atol=atol,
        train_test_rmse=ckpt.metrics["test"]["rmse"],
        test_pairs_checked=int(rows.size),
        test_pairs=len(test),
    )
    columns = Columns.from_dict(ckpt.columns)

    def compare(name: str, u: np.ndarray, m: np.ndarray, batch_size: int) -> np.ndarray:
        part = Part(u, m, np.zeros(u.size, np.float32))
        rating, cold = predict_known(ckpt.model.eval(), part, known)
        _, rank = torch_predict(ckpt, u, m)
        user_ids, movie_ids = vocab.raw_users(u), vocab.raw_movies(m)
        # ratings as rec-score writes them (Model.predict runs its driver), rank scores as
        # its top-k tables sort by them (Artifacts.predict_ids, the call of each block)
        scored = Model(arts, RuntimeOptions(batch_size=batch_size)).predict(
            pa.table({columns.user: user_ids, columns.movie: movie_ids}),
            on_unknown="fallback",
            user_col=columns.user,
            movie_col=columns.movie,
        )
        pred = arts.predict_ids(
            _ids(user_ids), _ids(movie_ids), on_unknown="fallback", batch_size=batch_size
        )
        pred_ratings = scored.column(contract.PREDICTION_COL).to_numpy()
        warm = ~cold  # rank scores of cold pairs are the fallback rating: no PyTorch side
        for label, got, want in (
            ("rating", pred_ratings, rating),
            ("rank_score", pred.rank_scores[warm], rank[warm]),
        ):
            diff = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
            report.checks.append(ParityCheck(f"{name} ({label})", len(u), diff, diff <= atol))
        cold_seen = (
            np.asarray(scored.column(contract.COLD_START_COL).to_numpy(zero_copy_only=False))
            == cold
        )
        if not cold_seen.all():
            report.checks.append(ParityCheck(f"{name} (cold_start)", len(u), float("inf"), False))
        return pred_ratings

    name = "test split" if rows.size == len(test) else f"test split, sample of {rows.size}"
    got = compare(name, test.user_idx[rows], test.movie_idx[rows], batch_size=4096)
    report.onnx_test_rmse = rating_errors(got, test.rating[rows])["rmse"]
    u, m = parity_pairs(known, n_random, seed)
    compare(f"{n_random} random known pairs", u, m, batch_size=1000)
    compare("batch of 1", u[:1], m[:1], batch_size=1)
    compare("batches of 2", u[:64], m[:64], batch_size=2)
    big = np.resize(u, 100_000), np.resize(m, 100_000)
    compare("one batch of 100000", *big, batch_size=100_000)
    if arts.catalog is not None:
        check_catalog_parity(ckpt, arts, atol, seed, report, known)
    return report


def _ids(column: pa.Array) -> np.ndarray:
    """Raw IDs as ``Artifacts.predict_ids`` takes them."""
    if pa.types.is_integer(column.type):
        return column.to_numpy()
    return np.asarray(column.to_pylist(), dtype=object)


#: Users of the catalog-graph checks (the first and last rows plus random ones) and K.
CATALOG_PARITY_USERS = 64
CATALOG_PARITY_K = 10
#: Pairs per PyTorch call of the catalog checks (64 users x 59,047 movies at once peaked
#: at 8.2 GB in rec-export; 1M pairs a call set the nightly run's peak at 25M ratings,
#: about 1 GB above the rest of the export).
TORCH_PAIRS = 1 << 18


def catalog_sample(
    n_users: int, n_movies: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample users (rows of the exported graphs, sorted), their exclusion mask over the
    graphs' movie rows, and the same exclusions as the graph's keys
    ``user_position * n_movies + movie_row``.

    About 10% of each user's movies are excluded at random; the second user keeps only
    three movies (fewer than K), the third none excluded.
    """
    rng = np.random.default_rng(seed + 1)
    n = min(CATALOG_PARITY_USERS, n_users)
    rest = rng.choice(np.arange(1, max(n_users - 1, 1)), max(n - 2, 0), replace=False)
    users = np.unique(np.concatenate([[0, n_users - 1], rest]).astype(np.int64))[:n]
    mask = rng.random((users.size, n_movies)) < 0.1
    if users.size > 1:
        mask[1] = True
        mask[1, rng.choice(n_movies, min(3, n_movies), replace=False)] = False
    if users.size > 2:
        mask[2] = False
    return users, mask, np.flatnonzero(mask.reshape(-1))


def check_catalog_parity(
    ckpt: Checkpoint,
    arts: Artifacts,
    atol: float,
    seed: int,
    report: ParityReport,
    known: Fallback,
) -> None:
    """The catalog graph against PyTorch (its bound is at least every allowed pair's rank
    score; excluded pairs come last) and against the pairs path (the scorer's top-k
    tables must be identical with and without it). The graphs hold the known rows only:
    ``user_rows[i]`` is the model row of the graph's user row ``i`` (likewise movies)."""
    vocab, graph = ckpt.split.vocab, arts.catalog
    user_rows, movie_rows = np.flatnonzero(known.known_users), np.flatnonzero(known.known_movies)
    n_movies = movie_rows.size
    users, mask, keys = catalog_sample(user_rows.size, n_movies, seed)
    k = min(CATALOG_PARITY_K, n_movies)
    name = f"catalog top-{k} of {users.size} users"
    rows, bounds = graph.top_bounds(users, keys, n_movies)  # every movie, highest bound first
    step = max(1, TORCH_PAIRS // n_movies)  # PyTorch's rows of 1M pairs take about 1 GB
    want_rank = np.concatenate(
        [
            torch_predict(
                ckpt,
                np.repeat(user_rows[users[a : a + step]], n_movies),
                movie_rows[rows[a : a + step].ravel()],
            )[1]
            for a in range(0, users.size, step)
        ]
    )
    allowed = ~np.take_along_axis(mask, rows, axis=1).reshape(-1)
    excess = want_rank.astype(np.float64) - bounds.reshape(-1)
    worst = float(np.max(excess[allowed], initial=0.0))
    report.checks.append(
        ParityCheck(f"{name} (rank_score <= bound)", int(allowed.sum()), worst, worst <= atol)
    )
    # excluded movies come last, with a bound of -inf, and no movie twice
    n_allowed = (~mask).sum(axis=1)
    order_ok = bool(
        (np.sort(rows, axis=1) == np.arange(n_movies)).all()
        and (allowed.reshape(rows.shape) == (np.arange(n_movies) < n_allowed[:, None])).all()
        and np.isneginf(bounds.reshape(-1)[~allowed]).all()
    )
    report.checks.append(
        ParityCheck(
            f"{name} (excluded last)", int(mask.sum()), 0.0 if order_ok else float("inf"), order_ok
        )
    )
    # the public API: recommend() with the catalog graph and without it (every pair
    # through the model); the exclusions as the (user, movie) pairs a caller passes
    columns = Columns.from_dict(ckpt.columns)
    raw_users = vocab.raw_users(user_rows[users])
    excluded = pa.table(
        {
            columns.user: vocab.raw_users(user_rows[users[keys // n_movies]]),
            columns.movie: vocab.raw_movies(movie_rows[keys % n_movies]),
        }
    )
    runtime = RuntimeOptions(batch_size=4096)
    pairs_only = load_artifacts(arts.model_path, arts.mapping_path, use_catalog=False)
    names = dict(user_col=columns.user, movie_col=columns.movie)
    with_graph = Model(arts, runtime).recommend(raw_users, k, exclude=excluded, **names)
    by_pairs = Model(pairs_only, runtime).recommend(raw_users, k, exclude=excluded, **names)
    # the same users, ranks and movies; ratings and scores to rounding (onnxruntime's
    # float32 results move in the last bit with the batch a pair is scored in)
    values = [contract.PREDICTION_COL, contract.SCORE_COL]
    same = with_graph.drop_columns(values).equals(by_pairs.drop_columns(values))
    diff = float("inf")
    if same:
        diff = max(
            float(
                np.max(
                    np.abs(
                        with_graph.column(name).to_numpy().astype(np.float64)
                        - by_pairs.column(name).to_numpy()
                    ),
                    initial=0.0,
                )
            )
            for name in values
        )
    report.checks.append(
        ParityCheck(
            f"{name} (table == pairs path)",
            users.size * n_movies,
            diff,
            diff <= atol,
        )
    )
