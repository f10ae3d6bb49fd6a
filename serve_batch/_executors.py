"""Where the per-block functions run: one small interface, two executors.

``executor.map(fn, parts, read)`` calls ``fn(artifacts, block)`` on every block of
``parts`` (``read(part)`` yields a part's blocks; without ``read`` each part is one
block) and yields the results, in input order when ``ordered``. :class:`LocalExecutor`
runs them in this process; ``movierec.serve_batch._ray.RayExecutor`` on Ray Data actors,
each with its own session. The driver neither knows nor cares which (as LensKit's
``parallel/invoker.py`` picks an invoker for one per-query function).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from movierec.serve_batch._artifacts import Artifacts
from movierec.serve_batch._config import ScoreConfig
from movierec.serve_batch._io import Prefetch

BlockFn = Callable[[Artifacts, Any], Any]
Read = Callable[[Any], Iterable[Any]]


class Executor(Protocol):
    def map(
        self, fn: BlockFn, parts: Iterable[Any], read: Read | None = None, ordered: bool = True
    ) -> Iterator[Any]: ...

    def describe(self) -> dict[str, Any]:
        """The manifest's ``engine`` section."""
        ...


class LocalExecutor:
    """Blocks one after another in this process.

    Each block's onnxruntime calls run side by side on the artifacts' threads
    (:meth:`Artifacts.predict_rows`); with ``prefetch`` the next blocks are read on a
    thread of their own while this one is scored (Arrow releases the GIL).
    """

    def __init__(self, arts: Artifacts, prefetch: bool = True) -> None:
        self.arts = arts
        self.prefetch = prefetch

    def map(
        self, fn: BlockFn, parts: Iterable[Any], read: Read | None = None, ordered: bool = True
    ) -> Iterator[Any]:
        if read is None:
            blocks: Iterator[Any] = iter(parts)
        else:
            blocks = (block for part in parts for block in read(part))
        ahead = Prefetch(blocks) if self.prefetch and read is not None else None
        try:
            for block in ahead or blocks:
                yield fn(self.arts, block)
        finally:
            if ahead is not None:
                ahead.close()

    def describe(self) -> dict[str, Any]:
        return {"name": "local"}


@contextlib.contextmanager
def open_executor(config: ScoreConfig, arts: Artifacts) -> Iterator[Executor]:
    """The executor of ``config.engine``: this process, or a Ray job (started here, shut
    down afterwards if this run started it)."""
    if config.ray is None:
        yield LocalExecutor(arts, prefetch=config.runtime.overlap_io)
        return
    from movierec.serve_batch._ray import RayExecutor  # optional extra: imported on demand

    with RayExecutor.start(config, arts) as executor:
        yield executor
