"""What every run leaves beside its run report: ``DIR/report.html`` and, where asked,
the Prometheus metrics file.

Both are derived from the run reports, so a failure to write them (a full disk, a
missing collector folder, even a bug in drawing a plot) is logged as one warning and
never changes the run's outcome nor its exit code: the next run writes them again from
the same history.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from movierec.nightly._home import Home
from movierec.serve_batch.errors import MovieRecError

log = logging.getLogger(__name__)


def write_run_outputs(home: Home, report: dict[str, Any], metrics_file: Path | None) -> None:
    """Write ``DIR/report.html`` and ``metrics_file`` (if not None) after the run whose
    report is ``report`` (already written)."""
    from movierec.nightly._report import write_html_report

    try:
        write_html_report(home)
    except Exception as exc:  # noqa: BLE001 (the run's own outcome comes first)
        log.warning("could not write %s/report.html: %s", home.root, _describe(exc))
    if metrics_file is None:
        return
    from movierec.nightly._metrics_file import write_metrics_file

    try:
        write_metrics_file(metrics_file, home, report)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not write the metrics file %s: %s", metrics_file, _describe(exc))


def _describe(exc: Exception) -> str:
    if isinstance(exc, MovieRecError | OSError):
        return str(exc)
    return f"{type(exc).__name__}: {exc} (a bug; please report it)"
