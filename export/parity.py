"""Prove that the exported model scores like PyTorch, with the scorer's own code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from serve_batch import Artifacts
from train.checkpoint import Checkpoint
from train.metrics import rating_errors


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


def check_parity(
    ckpt: Checkpoint, arts: Artifacts, atol: float, n_random: int, seed: int = 0
) -> ParityReport:
    """Score the test split and random pairs on both sides; collect every failure.

    The ONNX side goes through ``Artifacts.predict_ids`` (raw IDs in, the mapping applied),
    the very call ``rec-score`` makes per batch, at batch sizes unlike the export's.
    """
    vocab, test = ckpt.split.vocab, ckpt.split.test
    report = ParityReport(atol=atol, train_test_rmse=ckpt.metrics["test"]["rmse"])

    def compare(name: str, u: np.ndarray, m: np.ndarray, batch_size: int) -> np.ndarray:
        rating, rank = torch_predict(ckpt, u, m)
        pred = arts.predict_ids(
            vocab.user_ids[u], vocab.movie_ids[m], on_unknown="error", batch_size=batch_size
        )
        for label, got, want in (
            ("rating", pred.ratings, rating),
            ("rank_score", pred.rank_scores, rank),
        ):
            diff = float(np.max(np.abs(got.astype(np.float64) - want))) if len(u) else 0.0
            report.checks.append(ParityCheck(f"{name} ({label})", len(u), diff, diff <= atol))
        return pred.ratings

    got = compare("test split", test.user_idx, test.movie_idx, batch_size=4096)
    report.onnx_test_rmse = rating_errors(got, test.rating)["rmse"]
    u, m = parity_pairs(ckpt, n_random, seed)
    compare(f"{n_random} random known pairs", u, m, batch_size=1000)
    compare("batch of 1", u[:1], m[:1], batch_size=1)
    compare("batches of 2", u[:64], m[:64], batch_size=2)
    big = np.resize(u, 100_000), np.resize(m, 100_000)
    compare("one batch of 100000", *big, batch_size=100_000)
    return report
