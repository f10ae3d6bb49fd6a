"""Outputs that appear whole or not at all: written under a hidden temporary name in
the target's folder, then renamed into place (``os.replace``, atomic on one filesystem).

Shared by every stage (``rec-train``'s artifacts, ``rec-export``'s model and mapping,
``rec-score``'s outputs), so that a crash or a full disk never leaves a half-written file
where a cron job would read it. Temporaries are named ``.NAME.tmp-PID-RAND``.

Only a SIGKILL (an out-of-memory kill, say) can leave such a temporary behind. The next
run writing the same target removes those whose process is gone and that have not been
touched for ``STALE_AFTER_SECONDS``, so nightly jobs do not slowly fill the disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from movierec.serve_batch.errors import StorageError, UsageError

__all__ = [
    "SUCCESS_MARKER",
    "AtomicOutputs",
    "atomic_path",
    "storage_error",
    "sweep_stale_temps",
    "temp_path_beside",
]

log = logging.getLogger(__name__)

#: A leftover temporary is removed only when untouched this long (a live run on another
#: machine sharing the folder keeps writing to its temporary, so it is never this old).
STALE_AFTER_SECONDS = 6 * 3600
_TEMP_SUFFIX = re.compile(r"(\d+)-[0-9a-f]{8}")


def _temp_name_prefix(target: Path) -> str:
    """Every temporary of ``target`` is named this prefix + ``PID-RAND``."""
    return f".{Path(target).name}.tmp-"


def temp_path_beside(target: Path, *, folder: bool = False) -> Path:
    """Create an empty hidden temporary file (or, with ``folder``, a folder) in
    ``target``'s folder and return its path.

    Created with ``open(..., "xb")`` or ``mkdir``, so it gets the permissions a normal
    file gets under the umask (a ``mkstemp`` file would be private to its owner).
    """
    target = Path(target)
    tmp = target.parent / f"{_temp_name_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}"
    if folder:
        tmp.mkdir()
    else:
        with open(tmp, "xb"):
            pass
    return tmp


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; ``os.replace`` it onto ``target`` on success.

    On failure the temporary file is removed and an existing ``target`` is left as it was;
    an OS error writing it (a full disk) comes out as ``StorageError`` naming ``target``.
    """
    target = Path(target)
    tmp = temp_path_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise storage_error(exc, [(tmp, target)]) from exc
        raise


def storage_error(exc: OSError, pending: list[tuple[Path, Path]]) -> StorageError:
    """``exc`` as a ``StorageError`` naming the file it concerns, never a hidden temporary.

    ``pending``: ``(temporary, target)`` of the outputs being written. An error that names
    a temporary is its target's; one that names no file (pyarrow's and Python's buffered
    writes do not) but can only come from a write (disk full) is the target whose
    temporary was written last, the one being written when it failed.
    """
    import errno as errno_codes

    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    named = exc.filename
    if named is not None:
        for tmp, target in pending:
            if os.path.abspath(named) == os.path.abspath(tmp):
                return StorageError(target, reason)
        return StorageError(named, reason)
    write_only = {errno_codes.ENOSPC, errno_codes.EFBIG, errno_codes.EROFS}
    write_only.add(getattr(errno_codes, "EDQUOT", errno_codes.ENOSPC))
    if exc.errno in write_only and pending:

        def written_at(item: tuple[Path, Path]) -> int:
            try:
                return os.stat(item[0]).st_mtime_ns
            except OSError:
                return -1

        return StorageError(max(pending, key=written_at)[1], reason)
    return StorageError("(file not named by the system)", reason)


def sweep_stale_temps(target: Path, older_than: float = STALE_AFTER_SECONDS) -> list[Path]:
    """Remove the temporaries of ``target`` that killed runs left behind; return them.

    A temporary is removed only if its process (the PID in its name) no longer runs on
    this machine and it has not been modified for ``older_than`` seconds. POSIX only.
    """
    if os.name != "posix":
        return []
    target = Path(target)
    prefix = _temp_name_prefix(target)
    try:
        candidates = [p for p in target.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    removed = []
    now = time.time()
    for path in candidates:
        match = _TEMP_SUFFIX.fullmatch(path.name[len(prefix) :])
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            info = path.lstat()
            if now - info.st_mtime < older_than:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        log.warning("removed %s, left behind by an earlier run that was killed", path)
        removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


#: Written last into every output folder: the folder is complete.
SUCCESS_MARKER = "_SUCCESS"


class AtomicOutputs:
    """Hidden temp files (or folders) beside each target, renamed into place together.

    Use as a context manager: on any exception (or SIGTERM turned into one) the temps
    are deleted and the targets are untouched. A SIGKILL can leave a hidden
    ``.NAME.tmp-PID-RAND`` behind but never a partial target; :meth:`reserve` sweeps
    such leftovers of the same target (:func:`sweep_stale_temps`).

    A folder target (:meth:`reserve_folder`) gets a ``_SUCCESS`` marker when committed;
    a previous output folder (one with the marker) is replaced, any other existing
    folder is refused before anything is written.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._folders: set[Path] = set()

    def __enter__(self) -> AtomicOutputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            return
        pending = list(self._pending)
        self.discard()
        if isinstance(exc, OSError):
            raise storage_error(exc, pending) from exc

    def reserve(self, target: Path) -> Path:
        """Create and return the temp path for ``target`` (fails early if unwritable).

        Missing parent folders are created, as ``rec-train`` and ``rec-export`` create
        their output folders."""
        target = Path(target)
        self._make_parent(target)
        if target.is_dir():
            raise UsageError(f"{target}: is a folder, expected a file path")
        return self._temp(target, folder=False)

    def reserve_folder(self, target: Path) -> Path:
        """Create and return a hidden temp folder for the folder ``target``."""
        target = Path(target)
        self._make_parent(target)
        if target.exists() and not target.is_dir():
            raise UsageError(
                f"{target}: is a file; an output without a .parquet, .csv or .csv.gz ending "
                "is written as a folder"
            )
        if target.is_dir() and any(target.iterdir()) and not (target / SUCCESS_MARKER).exists():
            raise UsageError(
                f"{target}: folder exists and is not a rec-score output (no {SUCCESS_MARKER}); "
                "remove it or choose another output"
            )
        return self._temp(target, folder=True)

    def _make_parent(self, target: Path) -> None:
        folder = target.parent
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{target}: {folder} is not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"{target}: cannot create the output folder {folder} ({exc.strerror or exc})"
            ) from exc

    def _temp(self, target: Path, folder: bool) -> Path:
        sweep_stale_temps(target)
        try:
            tmp = temp_path_beside(target, folder=folder)
        except OSError as exc:
            raise UsageError(
                f"{target}: cannot write to folder {target.parent} ({exc.strerror or exc})"
            ) from exc
        self._pending.append((tmp, target))
        if folder:
            self._folders.add(tmp)
        return tmp

    def commit(self) -> None:
        """Rename every temp onto its target (in reservation order).

        SIGTERM and SIGINT wait until the renames are done, so an interrupted run never
        leaves OUTPUT renamed without its top-k table or manifest.
        """
        for tmp in self._folders:
            (tmp / SUCCESS_MARKER).touch()
        held = {signal.SIGTERM, signal.SIGINT}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        replaced = []
        try:
            for tmp, target in self._pending:
                if tmp in self._folders and target.exists():
                    aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
                    os.replace(target, aside)  # an earlier output: deleted below
                    replaced.append(aside)
                os.replace(tmp, target)
            self._pending.clear()
            self._folders.clear()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        for aside in replaced:
            shutil.rmtree(aside, ignore_errors=True)

    def discard(self) -> None:
        """Delete the temps; targets stay as they were."""
        for tmp, _ in self._pending:
            if tmp in self._folders:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        self._pending.clear()
        self._folders.clear()
