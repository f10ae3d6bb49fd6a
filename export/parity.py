"""Prove that the exported model scores like PyTorch, through the scorer's public API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import torch

from movierec.serve_batch import Artifacts, Model, RuntimeOptions, contract, load_artifacts
from movierec.train.checkpoint import Checkpoint
from movierec.train.metrics import rating_errors


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


def parity_pairs(ckpt: Checkpoint, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random known pairs plus the first and last rows of both tables."""
    vocab = ckpt.split.vocab
    rng = np.random.default_rng(seed)
    u = rng.integers(0, vocab.n_users, n, dtype=np.int64)
    m = rng.integers(0, vocab.n_movies, n, dtype=np.int64)
    edges_u = np.array([0, 0, vocab.n_users - 1, vocab.n_users - 1], dtype=np.int64)
    edges_m = np.array([0, vocab.n_movies - 1, 0, vocab.n_movies - 1], dtype=np.int64)
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
) -> ParityReport:
    """Score the test split (a seeded sample of ``n_test`` pairs where it is larger) and
    random pairs on both sides; collect every failure. Every part is bounded, so the
    check costs the same at any data size.

    The ONNX side goes through ``Artifacts.predict_ids`` (raw IDs in, the mapping applied),
    the very call ``rec-score`` makes per batch, at batch sizes unlike the export's.
    """
    vocab, test = ckpt.split.vocab, ckpt.split.test
    rows = test_sample(len(test), n_test, seed)
    report = ParityReport(
        atol=atol,
        train_test_rmse=ckpt.metrics["test"]["rmse"],
        test_pairs_checked=int(rows.size),
        test_pairs=len(test),
    )

    def compare(name: str, u: np.ndarray, m: np.ndarray, batch_size: int) -> np.ndarray:
        rating, rank = torch_predict(ckpt, u, m)
        user_ids, movie_ids = vocab.user_ids[u], vocab.movie_ids[m]
        # ratings as rec-score writes them (Model.predict runs its driver), rank scores as
        # its top-k tables sort by them (Artifacts.predict_ids, the call of each block)
        scored = Model(arts, RuntimeOptions(batch_size=batch_size)).predict(
            pa.table({contract.USER_COL: user_ids, contract.MOVIE_COL: movie_ids}),
            on_unknown="error",
        )
        pred = arts.predict_ids(user_ids, movie_ids, on_unknown="error", batch_size=batch_size)
        pred_ratings = scored.column(contract.PREDICTION_COL).to_numpy()
        for label, got, want in (
            ("rating", pred_ratings, rating),
            ("rank_score", pred.rank_scores, rank),
        ):
            diff = float(np.max(np.abs(got.astype(np.float64) - want))) if len(u) else 0.0
            report.checks.append(ParityCheck(f"{name} ({label})", len(u), diff, diff <= atol))
        return pred_ratings

    name = "test split" if rows.size == len(test) else f"test split, sample of {rows.size}"
    got = compare(name, test.user_idx[rows], test.movie_idx[rows], batch_size=4096)
    report.onnx_test_rmse = rating_errors(got, test.rating[rows])["rmse"]
    u, m = parity_pairs(ckpt, n_random, seed)
    compare(f"{n_random} random known pairs", u, m, batch_size=1000)
    compare("batch of 1", u[:1], m[:1], batch_size=1)
    compare("batches of 2", u[:64], m[:64], batch_size=2)
    big = np.resize(u, 100_000), np.resize(m, 100_000)
    compare("one batch of 100000", *big, batch_size=100_000)
    if arts.catalog is not None:
        check_catalog_parity(ckpt, arts, atol, seed, report)
    return report


#: Users of the catalog-graph checks (the first and last rows plus random ones) and K.
CATALOG_PARITY_USERS = 64
CATALOG_PARITY_K = 10
#: Pairs per PyTorch call of the catalog checks (64 users x 59,047 movies at once peaked
#: at 8.2 GB in rec-export).
TORCH_PAIRS = 1 << 20


def catalog_sample(ckpt: Checkpoint, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample users (dense rows, sorted), their exclusion mask over movie rows, and the
    same exclusions as the graph's keys ``user_position * n_movies + movie_row``.

    About 10% of each user's movies are excluded at random; the second user keeps only
    three movies (fewer than K), the third none excluded.
    """
    vocab = ckpt.split.vocab
    rng = np.random.default_rng(seed + 1)
    n = min(CATALOG_PARITY_USERS, vocab.n_users)
    rest = rng.choice(np.arange(1, vocab.n_users - 1), max(n - 2, 0), replace=False)
    users = np.unique(np.concatenate([[0, vocab.n_users - 1], rest]).astype(np.int64))[:n]
    mask = rng.random((users.size, vocab.n_movies)) < 0.1
    if users.size > 1:
        mask[1] = True
        mask[1, rng.choice(vocab.n_movies, min(3, vocab.n_movies), replace=False)] = False
    if users.size > 2:
        mask[2] = False
    return users, mask, np.flatnonzero(mask.reshape(-1))


def check_catalog_parity(
    ckpt: Checkpoint, arts: Artifacts, atol: float, seed: int, report: ParityReport
) -> None:
    """The catalog graph against PyTorch (its bound is at least every allowed pair's rank
    score; excluded pairs come last) and against the pairs path (the scorer's top-k
    tables must be identical with and without it)."""
    vocab, graph = ckpt.split.vocab, arts.catalog
    users, mask, keys = catalog_sample(ckpt, seed)
    n_movies = vocab.n_movies
    k = min(CATALOG_PARITY_K, n_movies)
    name = f"catalog top-{k} of {users.size} users"
    rows, bounds = graph.top_bounds(users, keys, n_movies)  # every movie, highest bound first
    step = max(1, TORCH_PAIRS // n_movies)  # PyTorch's rows of 1M pairs take about 1 GB
    want_rank = np.concatenate(
        [
            torch_predict(
                ckpt, np.repeat(users[a : a + step], n_movies), rows[a : a + step].ravel()
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
    raw_users = vocab.user_ids[users]
    excluded = pa.table(
        {
            contract.USER_COL: vocab.user_ids[users[keys // vocab.n_movies]],
            contract.MOVIE_COL: vocab.movie_ids[keys % vocab.n_movies],
        }
    )
    runtime = RuntimeOptions(batch_size=4096)
    pairs_only = load_artifacts(arts.model_path, arts.mapping_path, use_catalog=False)
    with_graph = Model(arts, runtime).recommend(raw_users, k, exclude=excluded)
    by_pairs = Model(pairs_only, runtime).recommend(raw_users, k, exclude=excluded)
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
