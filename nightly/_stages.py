"""Each stage's status, wall seconds and peak resident memory, for the run report.

All stages run in this one process, whose kernel peak (``ru_maxrss``) only grows, so a
stage's own peak is sampled instead: a daemon thread reads the resident size from
``/proc/self/statm`` every ``SAMPLE_SECONDS`` and keeps the largest since the stage
began (allocating even 100 MB takes longer than a sampling interval, so a stage's peak
is not missed by more than what it allocates in one). Where ``/proc`` is absent the
figure is the process's peak so far, which the report says. Ray actors are other
processes: their memory is not counted here.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from movierec.serve_batch.errors import GateRefused, Interrupted

_STATM = Path("/proc/self/statm")
#: How often the resident size is read while a stage runs.
SAMPLE_SECONDS = 0.02


class StageLog:
    """Records stages in the order they ran; ``stages`` is JSON-ready."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}
        self._sampler = _PeakSampler() if _rss_bytes() is not None else None
        self.rss_scope = "stage (sampled)" if self._sampler else "process so far"

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time the block; its status is done, refused, interrupted or failed."""
        entry: dict[str, Any] = {"status": "running"}
        self.stages[name] = entry
        if self._sampler:
            self._sampler.reset()
        t0 = time.perf_counter()
        try:
            yield entry
            entry["status"] = "done"
        except GateRefused:
            entry["status"] = "refused"
            raise
        except (Interrupted, KeyboardInterrupt):
            entry["status"] = "interrupted"
            raise
        except BaseException:
            entry["status"] = "failed"
            raise
        finally:
            entry["wall_seconds"] = round(time.perf_counter() - t0, 3)
            peak = self._sampler.peak() if self._sampler else None
            entry["peak_rss_mib"] = _mib(peak) if peak else process_peak_rss_mib()

    def skip(self, name: str, why: str) -> None:
        self.stages[name] = {"status": "skipped", "why": why}

    def close(self) -> None:
        if self._sampler:
            self._sampler.stop()

    def walls(self) -> str:
        """``train 20.1 s, refit 9.8 s, ...`` for the summary line."""
        return ", ".join(
            f"{name} {s['wall_seconds']:.1f} s"
            for name, s in self.stages.items()
            if "wall_seconds" in s
        )


class _PeakSampler:
    """The largest resident size seen since :meth:`reset`, sampled on a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peak = _rss_bytes() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="movierec-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        rss = _rss_bytes() or 0
        with self._lock:
            self._peak = max(self._peak, rss)

    def reset(self) -> None:
        with self._lock:
            self._peak = _rss_bytes() or 0

    def peak(self) -> int:
        self._sample()
        with self._lock:
            return self._peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


def process_peak_rss_mib() -> float:
    """The process's peak resident memory so far (MiB), as the kernel counts it."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _mib(peak if sys.platform == "darwin" else peak * 1024)


def _rss_bytes() -> int | None:
    try:
        return int(_STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _mib(n: int) -> float:
    return round(n / (1024 * 1024), 1)
