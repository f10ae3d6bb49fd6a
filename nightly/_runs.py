"""The run reports of a home folder (``DIR/runs/VERSION.json``), read back.

Every run that took the lock wrote one, whatever its outcome, and they are never pruned:
they are the job's history. ``status``, ``rollback``, ``report``, the data gate and the
metrics file read them here. A report that cannot be read (edited by hand, say) is
skipped with a warning rather than failing the command that reads the history.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from movierec.nightly._home import Home, version_key
from movierec.serve_batch._manifest import jsonable
from movierec.serve_batch.atomic import atomic_path

log = logging.getLogger(__name__)

PUBLISHED = "published"
REFUSED = "refused"
FAILED = "failed"
INTERRUPTED = "interrupted"
ROLLED_BACK = "rolled-back"
#: Every status a run report can hold (``running`` only while the run is going).
STATUSES = (PUBLISHED, REFUSED, FAILED, INTERRUPTED, ROLLED_BACK)


def read_runs(home: Home) -> list[dict[str, Any]]:
    """Every readable run report of ``home``, oldest first."""
    try:
        paths = [p for p in home.runs.iterdir() if p.suffix == ".json"]
    except FileNotFoundError:
        return []
    runs = []
    for path in sorted(paths, key=lambda p: version_key(p.stem)):
        run = read_run_file(path)
        if run is not None:
            runs.append(run)
    return runs


def read_run(home: Home, version: str | None) -> dict[str, Any] | None:
    """The report of ``version`` (None where there is none or it cannot be read)."""
    if version is None:
        return None
    path = home.report(version)
    return read_run_file(path) if path.exists() else None


def read_run_file(path) -> dict[str, Any] | None:
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: skipped, not a readable run report (%s)", path, exc)
        return None
    if not isinstance(run, dict) or "version" not in run:
        log.warning("%s: skipped, not a run report (no version)", path)
        return None
    return run


def last_with_status(runs: list[dict[str, Any]], status: str) -> dict[str, Any] | None:
    """The newest run of ``runs`` (oldest first) whose status is ``status``."""
    return next((r for r in reversed(runs) if r.get("status") == status), None)


def write_run_report(path: Path, report: dict[str, Any]) -> None:
    """Write a run report whole (a temporary renamed into place)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=jsonable) + "\n")
