"""``rec-nightly rollback``: put an earlier published version back in service.

Under the job's lock (a run going: ``LockHeld``, nothing changed), both links,
``models/current`` and ``recommendations/latest.parquet``, are switched to the version
as a publish switches them (each renamed over atomically, signals held between the two),
and a run report with status ``rolled-back`` is written. The next night's quality gate
then compares its candidate with this version, and pruning never removes it while it
is in service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movierec.nightly._home import Home, signals_held, version_key
from movierec.nightly._lock import hold_lock
from movierec.nightly._outputs import write_run_outputs
from movierec.nightly._runs import PUBLISHED, ROLLED_BACK, read_runs, write_run_report
from movierec.nightly.config import DEFAULT_PUBLISH_TABLE
from movierec.serve_batch.errors import UsageError

if TYPE_CHECKING:
    from movierec.db._uri import DatabaseURI

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollbackConfig:
    """``to``: the version to put in service (None: the one published before the one in
    service); ``metrics_file``: rewritten afterwards, as after a run; ``publish``: the
    database whose view ``publish_table`` the runs switch (``rec-nightly --publish``)."""

    home: Path
    to: str | None = None
    metrics_file: Path | None = None
    publish: DatabaseURI | None = None  # its view is pointed at ``to`` too
    publish_table: str = DEFAULT_PUBLISH_TABLE


@dataclass
class RollbackResult:
    version: str  # the rollback's own name (its UTC start time), as runs/ records it
    report: dict[str, Any]
    summary: str


def roll_back(
    config: RollbackConfig,
    *,
    started: datetime | None = None,
    on_version: Callable[[str], None] | None = None,
) -> RollbackResult:
    """Switch the service to ``config.to`` (see the module docstring).

    ``on_version``: called with this rollback's version once the lock is held.
    Raises ``UsageError`` (nothing in service, no such published version, already in
    service) and ``LockHeld``, changing nothing.
    """
    home = Home(config.home)
    if not home.models.is_dir():
        raise UsageError(f"{home.root} is not a rec-nightly home folder (no models/ in it)")
    started = started or datetime.now(UTC)
    t0 = time.perf_counter()
    with hold_lock(home.lock, started.isoformat(timespec="seconds")) as lock:
        version = home.new_version(started)
        if on_version is not None:
            on_version(version)
        lock.record(version=version)
        current, table = home.in_service(), home.latest_table()
        target = choose_target(home, config.to, current, table)
        database = switch(home, target, config)
        log.info("rolled back: %s -> %s", current, target)
        report = {
            "format": 1,
            "version": version,
            "status": ROLLED_BACK,
            "started_at": started.isoformat(timespec="seconds"),
            "home": str(home.root),
            "rollback": {"from": current, "to": target, "table_from": table},
            "in_service_before": {"model": current, "recommendations": table},
            "model": {"version": target, "path": str(home.model_dir(target))},
            "recommendations": {"path": str(home.table(target))},
            **({"database": database} if database else {}),
            "published": False,
            "exit_code": 0,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(time.perf_counter() - t0, 3),
        }
        write_run_report(home.report(version), report)
        write_run_outputs(home, report, config.metrics_file)
    summary = (
        f"rolled back to {target}: {home.current} and {home.latest} point to it (was {current})"
    )
    return RollbackResult(version, report, summary)


def switch(home: Home, target: str, config: RollbackConfig) -> dict[str, Any] | None:
    """Point the links (and the database's view, first) at ``target``, with signals held
    between the two; a failure of the links puts the view back."""
    if config.publish is None:
        home.publish(target)
        return None
    from movierec.db import point_view_at

    with signals_held():
        before = point_view_at(config.publish, config.publish_table, target)
        try:
            home.publish(target)
        except BaseException:
            if before is not None:
                point_view_at(config.publish, config.publish_table, before)
            raise
    return {"target": str(config.publish), "view": config.publish_table, "from": before}


def published_versions(home: Home) -> list[str]:
    """Versions that a run published and whose model and table are still kept, oldest
    first: what a rollback may go back to."""
    runs = read_runs(home)
    published = {r["version"] for r in runs if r.get("status") == PUBLISHED}
    return [v for v in home.versions() if v in published and home.table(v).exists()]


def choose_target(home: Home, to: str | None, current: str | None, table: str | None) -> str:
    """The version to roll back to, checked (``UsageError`` naming what is possible)."""
    if current is None:
        raise UsageError(f"nothing is in service in {home.root} yet: nothing to roll back")
    kept = published_versions(home)
    if to is None:
        earlier = [v for v in kept if version_key(v) < version_key(current)]
        if not earlier:
            raise UsageError(
                f"no version published before {current} is kept in {home.root} "
                f"(kept: {', '.join(kept) or 'none'}); name one: rollback --home DIR VERSION"
            )
        return earlier[-1]
    if to == current and table == current:
        raise UsageError(f"{to} is already in service; nothing changed")
    if to not in kept:
        raise UsageError(
            f"{to} is not a published version kept in {home.root} (its model and table); "
            f"kept: {', '.join(kept) or 'none'}"
        )
    return to
