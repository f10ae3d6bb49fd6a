"""Each stage's status, wall seconds and peak resident memory, for the run report.

All stages run in this one process. On Linux the peak RSS (``VmHWM``) is reset before
each stage (``/proc/self/clear_refs``), so each stage reports its own peak; elsewhere
the figure is the process's peak so far (``getrusage``), which the report says.
Ray actors are other processes: their memory is not counted here.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from movierec.serve_batch.errors import GateRefused, Interrupted

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class StageLog:
    """Records stages in the order they ran; ``stages`` is JSON-ready."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}
        self.rss_scope = "stage" if _reset_peak_rss() else "process so far"

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time the block; its status is done, refused, interrupted or failed."""
        entry: dict[str, Any] = {"status": "running"}
        self.stages[name] = entry
        _reset_peak_rss()
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
            entry["peak_rss_mib"] = peak_rss_mib()

    def skip(self, name: str, why: str) -> None:
        self.stages[name] = {"status": "skipped", "why": why}

    def walls(self) -> str:
        """``train 20.1 s, refit 9.8 s, ...`` for the summary line."""
        return ", ".join(
            f"{name} {s['wall_seconds']:.1f} s"
            for name, s in self.stages.items()
            if "wall_seconds" in s
        )


def peak_rss_mib() -> float:
    """Peak resident memory (MiB): since the last reset where Linux allows resetting it."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux 4.0+); False where that cannot be done."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False
