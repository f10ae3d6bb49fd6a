"""Outputs that appear whole or not at all: written under a hidden temporary name in
the target's folder, then renamed into place (``os.replace``, atomic on one filesystem).

Shared by every stage (``rec-train``'s artifacts, ``rec-export``'s model and mapping,
``rec-score``'s outputs), so that a crash or a full disk never leaves a half-written file
where a cron job would read it. Temporaries are named ``.NAME.tmp-PID-RAND``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

from serve_batch.errors import UsageError

__all__ = ["AtomicOutputs", "atomic_path", "temp_path_beside"]


def temp_path_beside(target: Path) -> Path:
    """Create an empty hidden temporary file in ``target``'s folder and return its path.

    Created with ``open(..., "xb")``, so it gets the permissions a normal file gets under
    the umask (a ``mkstemp`` file would be private to its owner).
    """
    target = Path(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    with open(tmp, "xb"):
        pass
    return tmp


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; ``os.replace`` it onto ``target`` on success.

    On failure the temporary file is removed and an existing ``target`` is left as it was.
    """
    target = Path(target)
    tmp = temp_path_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class AtomicOutputs:
    """Hidden temp files beside each target, renamed into place together on success.

    Use as a context manager: on any exception (or SIGTERM turned into one) the temps
    are deleted and the targets are untouched. A SIGKILL can leave a hidden
    ``.NAME.tmp-PID-RAND`` behind but never a partial target.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def __enter__(self) -> AtomicOutputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()

    def reserve(self, target: Path) -> Path:
        """Create and return the temp path for ``target`` (fails early if unwritable)."""
        target = Path(target)
        folder = target.parent
        if not folder.exists():
            raise UsageError(f"{target}: output folder {folder} does not exist")
        if not folder.is_dir():
            raise UsageError(f"{target}: {folder} is not a folder")
        if target.is_dir():
            raise UsageError(f"{target}: is a folder, expected a file path")
        try:
            tmp = temp_path_beside(target)
        except OSError as exc:
            raise UsageError(
                f"{target}: cannot write to folder {folder} ({exc.strerror or exc})"
            ) from exc
        self._pending.append((tmp, target))
        return tmp

    def commit(self) -> None:
        """Rename every temp onto its target (in reservation order).

        SIGTERM and SIGINT wait until the renames are done, so an interrupted run never
        leaves OUTPUT renamed without its top-k table or manifest.
        """
        held = {signal.SIGTERM, signal.SIGINT}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            for tmp, target in self._pending:
                os.replace(tmp, target)
            self._pending.clear()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def discard(self) -> None:
        """Delete the temps; targets stay as they were."""
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._pending.clear()
