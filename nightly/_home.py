"""The home folder of the nightly job and the operations on it that must be safe.

::

    DIR/.lock                          the run lock (nightly/_lock.py)
    DIR/models/VERSION/                a published (or publishable) model version
    DIR/models/current -> VERSION      the model in service (a symlink)
    DIR/models/rejected-VERSION/       a candidate the quality gate refused
    DIR/recommendations/VERSION.parquet
    DIR/recommendations/latest.parquet -> VERSION.parquet
    DIR/runs/VERSION.json              the report of every run
    DIR/.work/VERSION/                 a run's scratch space (removed when it ends)

A version is named after the run's UTC start time, ``20250101T021500Z``, with ``-2``,
``-3``... if that name was taken (two runs in one second). The links are switched by
renaming a new link over the old one, so a reader sees the old target or the new one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from movierec.serve_batch.atomic import sweep_stale_temps
from movierec.serve_batch.errors import UsageError

log = logging.getLogger(__name__)

CURRENT = "current"
LATEST = "latest.parquet"
REJECTED_PREFIX = "rejected-"
_VERSION = re.compile(r"\d{8}T\d{6}Z(?:-(\d+))?")
_STAGING_SUFFIX = ".partial"


class Home:
    """Paths of one home folder ``DIR`` and the safe operations on them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.models = self.root / "models"
        self.recommendations = self.root / "recommendations"
        self.runs = self.root / "runs"
        self.work = self.root / ".work"
        self.lock = self.root / ".lock"
        self.current = self.models / CURRENT
        self.latest = self.recommendations / LATEST

    def create(self) -> None:
        """Create the folders, or refuse a home that cannot hold a nightly job."""
        try:
            for folder in (self.models, self.recommendations, self.runs, self.work):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot create the home folder {self.root} ({exc.strerror or exc})"
            ) from None
        for link in (self.current, self.latest):
            if link.exists() and not link.is_symlink():
                raise UsageError(
                    f"{link} is a real file or folder, not a symlink; rec-nightly publishes by "
                    "switching that link: move it away"
                )

    # --- names ----------------------------------------------------------------------
    def model_dir(self, version: str) -> Path:
        return self.models / version

    def rejected_dir(self, version: str) -> Path:
        return self.models / f"{REJECTED_PREFIX}{version}"

    def staging_dir(self, version: str) -> Path:
        return self.models / f".{version}{_STAGING_SUFFIX}"

    def table(self, version: str) -> Path:
        return self.recommendations / f"{version}.parquet"

    def report(self, version: str) -> Path:
        return self.runs / f"{version}.json"

    def work_dir(self, version: str) -> Path:
        return self.work / version

    def new_version(self, started: datetime) -> str:
        """The UTC start time as a name, made unique among this home's versions."""
        base = started.strftime("%Y%m%dT%H%M%SZ")
        n = 1
        while True:
            name = base if n == 1 else f"{base}-{n}"
            taken = (
                self.model_dir(name),
                self.rejected_dir(name),
                self.staging_dir(name),
                self.table(name),
                self.report(name),
                self.work_dir(name),
            )
            if not any(os.path.lexists(p) for p in taken):
                return name
            n += 1

    # --- what is in service ---------------------------------------------------------
    def in_service(self) -> str | None:
        """The version ``current`` points at (None before the first publish)."""
        return _link_target_name(self.current)

    def latest_table(self) -> str | None:
        """The version ``latest.parquet`` points at (None before the first publish)."""
        name = _link_target_name(self.latest)
        return name[: -len(".parquet")] if name and name.endswith(".parquet") else name

    def versions(self) -> list[str]:
        """Published-style version folders (``VERSION``), oldest first."""
        return sorted(
            (p.name for p in _list(self.models) if _is_version(p.name) and p.is_dir()),
            key=version_key,
        )

    def rejected(self) -> list[str]:
        """Versions of the refused candidates kept for inspection, oldest first."""
        names = [
            p.name[len(REJECTED_PREFIX) :]
            for p in _list(self.models)
            if p.name.startswith(REJECTED_PREFIX) and p.is_dir()
        ]
        return sorted((n for n in names if _is_version(n)), key=version_key)

    # --- publishing -----------------------------------------------------------------
    def publish(self, version: str) -> None:
        """Point ``current`` at ``models/VERSION`` and ``latest.parquet`` at its table.

        Each link is replaced by renaming a new link over it (atomic), with SIGINT and
        SIGTERM held until both are switched, so an interrupted run never leaves one
        switched without the other.
        """
        with signals_held():
            switch_link(self.current, version)
            switch_link(self.latest, self.table(version).name)
            _fsync_dir(self.models)
            _fsync_dir(self.recommendations)

    def prune(self, keep: int) -> list[str]:
        """Remove versions beyond the newest ``keep`` (models and tables; their run reports
        stay), never the one in service nor the one ``latest.parquet`` points at; also the
        refused candidates beyond the newest ``keep``. Returns what was removed."""
        removed = self.prune_plan(keep)
        for name in removed:
            if name.startswith(REJECTED_PREFIX):
                shutil.rmtree(self.models / name, ignore_errors=True)
            else:
                shutil.rmtree(self.model_dir(name), ignore_errors=True)
                self._remove_table(name)
            log.info("pruned %s", name)
        return removed

    def prune_plan(self, keep: int, publishing: bool = False) -> list[str]:
        """What :meth:`prune` would remove now; with ``publishing``, what it will remove
        once one more version is published (and in service), as ``status`` tells."""
        protected = set() if publishing else {self.in_service(), self.latest_table()}
        versions = self.versions()
        beyond = max(0, len(versions) + int(publishing) - keep)
        plan = [v for v in versions[:beyond] if v not in protected]
        rejected = self.rejected()
        plan += [f"{REJECTED_PREFIX}{v}" for v in rejected[: max(0, len(rejected) - keep)]]
        return plan

    def discard_candidate(self, version: str) -> None:
        """Remove what a failed or interrupted run wrote for ``version`` (never in service:
        this run did not publish it)."""
        if version in (self.in_service(), self.latest_table()):
            return
        shutil.rmtree(self.staging_dir(version), ignore_errors=True)
        shutil.rmtree(self.model_dir(version), ignore_errors=True)
        self._remove_table(version)

    def sweep_leftovers(self, running: str) -> list[str]:
        """Remove what killed runs left behind (only ever called under the lock, so no
        other run is writing): staging and scratch folders, half-switched link names,
        temporaries of tables, and model folders that never got a table nor a report."""
        swept: list[Path] = []
        for p in _list(self.models):
            if p.name.startswith(".") and p.name.endswith(_STAGING_SUFFIX):
                shutil.rmtree(p, ignore_errors=True)
                swept.append(p)
            elif p.name.startswith(f".{CURRENT}.tmp-"):
                p.unlink(missing_ok=True)
                swept.append(p)
        for p in _list(self.work):
            if p.name != running:
                shutil.rmtree(p, ignore_errors=True)
                swept.append(p)
        for p in _list(self.recommendations):
            if p.name.startswith(f".{LATEST}.tmp-"):
                p.unlink(missing_ok=True)
                swept.append(p)
            elif p.name.startswith(".") and ".tmp-" in p.name:
                target = self.recommendations / p.name[1:].split(".tmp-")[0]
                swept += sweep_stale_temps(target, older_than=0)  # only dead processes'
        service = {self.in_service(), self.latest_table()}
        for version in self.versions():
            never_finished = not (self.table(version).exists() or self.report(version).exists())
            if never_finished and version not in service:
                shutil.rmtree(self.model_dir(version), ignore_errors=True)
                swept.append(self.model_dir(version))
        for p in swept:
            log.warning("removed %s, left behind by a run that was killed", p)
        return [str(p) for p in swept]

    def _remove_table(self, version: str) -> None:
        table = self.table(version)
        for path in (table, table.with_name(table.name + ".manifest.json")):
            path.unlink(missing_ok=True)


def version_key(name: str) -> tuple[str, int]:
    """Sort key of version names: start time, then the ``-N`` of same-second runs."""
    match = _VERSION.fullmatch(name)
    suffix = match.group(1) if match else None
    return (name.split("-")[0], int(suffix) if suffix else 1)


def switch_link(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target`` (relative), replacing it atomically."""
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (then they are delivered)."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _is_version(name: str) -> bool:
    return _VERSION.fullmatch(name) is not None


def _link_target_name(link: Path) -> str | None:
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def _list(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a power cut keeps the new links)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
