"""The item-item ranking head's fit: everything of it that does not need the network.

The head (``movierec.train.item_item``) is a closed form of the ratings alone: its lambda
is chosen by the validation NDCG@10 of the head by itself, fit on the training part, and
the kept head is fit on train + validation. None of that reads the network, so
:func:`fit_item_item_head` can run on the second core while the network trains
(``TrainConfig.parallel_head``, off by default): at 25M ratings it is about 20 s of SVDs
and ranking beside five minutes of training, but on two cores the two threads slowed each
other about as much as the overlap saved (``bench/parallel_head.py``).

BLAS runs on one thread here whether the fit runs beside the training or not, so the two
give the same head to the last bit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from movierec.train import item_item
from movierec.train.fallback import Fallback
from movierec.train.metrics import ranking_metrics_many, ranking_task
from movierec.train.split import Part, Split

log = logging.getLogger(__name__)

#: Seeds the sample of users whose rankings are evaluated where there are too many.
EVAL_SAMPLE_SEED = 0


@dataclass(frozen=True, eq=False)  # holds arrays
class HeadFit:
    """The chosen lambda with what ``metrics.json`` records of the choice (``info``), and
    the head's user and movie factors fit on the training part (``on_train``, for the
    rank-mix choice on validation) and on train + validation (``on_known``, kept)."""

    info: dict
    on_train: tuple[np.ndarray, np.ndarray] = field(repr=False)
    on_known: tuple[np.ndarray, np.ndarray] = field(repr=False)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread within the block (the other core trains the network)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def spectrum(
    split: Split, parts: list[Part], rank: int, scale: tuple[float, float], seed: int
) -> item_item.Spectrum:
    """The truncated SVD behind the item-item head, of the ratings in ``parts``."""
    known = item_item.known_matrix(parts, split.vocab.n_users, split.vocab.n_movies, scale)
    return item_item.spectrum(known, rank, seed)


def fit_item_item_head(
    split: Split,
    rank: int,
    scale: tuple[float, float],
    seed: int,
    lam: float | None = None,
    eval_users: int = 0,
    known: Fallback | None = None,
) -> HeadFit:
    """Choose the head's lambda (``lam`` where given, else by validation NDCG@10 among
    ``item_item.LAMBDA_GRID`` with the head fit on train, ranking the validation users
    ``known`` knows, a seeded sample of ``eval_users`` where there are more), then fit it
    on train and on train + validation."""
    with one_blas_thread():
        spec = spectrum(split, [split.train], rank, scale, seed)
        grid = (lam,) if lam is not None else item_item.LAMBDA_GRID
        tried: dict[float, float] = {}
        if len(grid) > 1:
            task = ranking_task(
                split, "val", max_users=eval_users, seed=EVAL_SAMPLE_SEED, known=known
            )
            # each lambda's user rows for the evaluated users only (they are sorted): ten
            # heads of 162k users would hold 200 MB
            heads = []
            for value in grid:
                user, movie = item_item.head_factors(spec, value)
                heads.append((user[task.users], movie))

            def score(rows: np.ndarray) -> list[np.ndarray]:
                at = np.searchsorted(task.users, rows)
                return [user[at] @ movie.T for user, movie in heads]

            found = ranking_metrics_many(task, score, len(grid))
            tried = {value: f["ndcg@10"] for value, f in zip(grid, found, strict=True)}
            best = max(tried, key=lambda value: (tried[value], value))
            shown = ", ".join(f"{value:g}: {v:.4f}" for value, v in tried.items())
            log.info("item-item lambda by validation NDCG@10: {%s} -> %g", shown, best)
            del heads
        else:
            best = grid[0]
        on_train = item_item.head_factors(spec, best)
        info = {
            "rank": int(spec.s.size),
            "lambda_multiple": best,
            "lambda": best * spec.mean_diagonal,
            "val_ndcg@10": {f"{value:g}": v for value, v in tried.items()},
            "input": "rating / middle of the rating scale",
            # the head is a closed form: fitting it on validation too costs nothing and
            # adds what validation knows, whatever the network was trained on
            "fit_on": "train + validation",
        }
        del spec
        spec = spectrum(split, [split.train, split.val], rank, scale, seed)
        on_known = item_item.head_factors(spec, best)
    return HeadFit(info, on_train, on_known)


class Beside:
    """Run a function on a thread of its own while the caller works (``parallel``), or
    only when its result is asked for: the same result either way."""

    def __init__(self, parallel: bool, fn, *args, **kwargs) -> None:
        self._call = (fn, args, kwargs)
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future | None = None
        if parallel:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="movierec-head")
            self._future = self._pool.submit(fn, *args, **kwargs)

    def result(self):
        if self._future is None:
            fn, args, kwargs = self._call
            return fn(*args, **kwargs)
        try:
            return self._future.result()
        finally:
            self._pool.shutdown()

    def cancel(self) -> None:
        """Drop the work if it has not started; wait for it otherwise (never left running)."""
        if self._pool is not None:
            self._future.cancel()
            self._pool.shutdown(wait=True)
