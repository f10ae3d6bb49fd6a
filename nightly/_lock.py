"""The run lock: one nightly run per home folder at a time (``DIR/.lock``, ``flock``).

Non-blocking: a second run exits at once (``LockHeld``, exit 75) naming the holder's PID
and start time, which the holder writes into the lock file. The kernel releases the lock
when the holder's process ends, however it ends, so a killed run leaves nothing to clean
up; the file itself stays (removing it would let two runs lock two different files).
``flock`` is reliable on local filesystems; on NFS it depends on the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from movierec.serve_batch.errors import LockHeld

LOCK_FILE = ".lock"


@contextlib.contextmanager
def hold_lock(path: Path, started_at: str) -> Iterator[LockInfo]:
    """Hold ``path``'s lock for the block; ``LockHeld`` at once if another run has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd).strip().replace("\n", ", ") or "holder not yet recorded"
            raise LockHeld(
                f"{path}: another rec-nightly run holds the lock ({holder}); this run did nothing"
            ) from None
        info = LockInfo(fd, started_at)
        info.record()
        yield info
    finally:
        os.close(fd)  # releases the lock


class LockInfo:
    """What the holder writes into the lock file for a run that finds it locked."""

    def __init__(self, fd: int, started_at: str) -> None:
        self._fd = fd
        self.fields = {"PID": str(os.getpid()), "started": started_at, "host": socket.gethostname()}

    def record(self, **more: str) -> None:
        self.fields.update(more)
        data = ("\n".join(f"{k} {v}" for k, v in self.fields.items()) + "\n").encode()
        # write first, then cut what is left of a longer record: a run reading the file
        # meanwhile never finds it empty (truncating first left a window where it did)
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return ""
