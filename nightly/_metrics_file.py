"""``--metrics-file PATH``: the last run for Prometheus, in the textfile-collector format.

node_exporter's textfile collector reads ``*.prom`` files from one folder; each run
rewrites its file whole (``prometheus_client.write_to_textfile`` writes a temporary
beside it and renames it into place), so a scrape never sees half a file. The figures
come from the run reports (``runs/*.json``), not from the previous metrics file: the
last success survives a failed night, and a lost file is rebuilt by the next run.

Metrics (gauges; ``stage``, ``status`` and ``model`` are labels)::

    movierec_nightly_last_run_timestamp_seconds        when the last run ended
    movierec_nightly_last_run_exit_code                its exit code
    movierec_nightly_last_run_status{status}           1 for its status, 0 for the others
    movierec_nightly_last_success_timestamp_seconds    when the last run that published ended
    movierec_nightly_stage_seconds{stage}              the last run's wall seconds per stage
    movierec_nightly_test_rmse{model}                  model="candidate": the last run's;
    movierec_nightly_test_ndcg_at_10{model}              model="in_service": the model's in service
    movierec_nightly_table_rows                        rows of the table in service
    movierec_nightly_catalog_coverage{model}           its coverage (model="in_service"), and
                                                       the popularity baseline's
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from movierec.nightly._home import Home
from movierec.nightly._runs import PUBLISHED, STATUSES, last_with_status, read_run, read_runs
from movierec.serve_batch.errors import StorageError, UsageError

PREFIX = "movierec_nightly_"
#: The textfile collector reads only files with this ending.
SUFFIX = ".prom"


def check_metrics_path(path: Path) -> None:
    """Refuse a metrics file the textfile collector would never read, or could not be
    written, before the run does any work."""
    if path.suffix != SUFFIX:
        raise UsageError(
            f"{{metrics_file}} must end in {SUFFIX} (node_exporter's textfile collector "
            f"reads only those), got {str(path)!r}",
            params=("metrics_file",),
        )
    if not path.parent.is_dir():
        raise UsageError(
            f"{{metrics_file}}: the folder {path.parent} does not exist (it is the textfile "
            "collector's folder: create it, or point --collector.textfile.directory at it)",
            params=("metrics_file",),
        )


def write_metrics_file(path: Path, home: Home, last: dict[str, Any]) -> None:
    """Write ``path`` for the run report ``last`` (the run that just ended) and the
    history of ``home``."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(PREFIX + name, doc, labelnames=labels, registry=registry)

    ended = _timestamp(last.get("finished_at"))
    if ended is not None:
        gauge("last_run_timestamp_seconds", "When the last run ended (Unix time).").set(ended)
    if last.get("exit_code") is not None:
        gauge("last_run_exit_code", "Exit code of the last run.").set(last["exit_code"])
    status = gauge("last_run_status", "1 for the last run's status, 0 for the others.", ("status",))
    for name in STATUSES:
        status.labels(status=name).set(1 if last.get("status") == name else 0)

    success = (
        last if last.get("status") == PUBLISHED else last_with_status(read_runs(home), PUBLISHED)
    )
    success_at = _timestamp((success or {}).get("finished_at"))
    if success_at is not None:
        gauge(
            "last_success_timestamp_seconds",
            "When the last run that published a new version ended (Unix time).",
        ).set(success_at)

    stages = gauge("stage_seconds", "Wall seconds of each stage of the last run.", ("stage",))
    for name, stage in (last.get("stages") or {}).items():
        if "wall_seconds" in stage:
            stages.labels(stage=name).set(stage["wall_seconds"])

    service = read_run(home, home.in_service())
    models = {"candidate": last, "in_service": service}
    rmse = gauge("test_rmse", "Holdout test RMSE.", ("model",))
    ndcg = gauge("test_ndcg_at_10", "Holdout test NDCG@10.", ("model",))
    for label, run in models.items():
        figures = _model_metrics(run, label)
        if figures.get("test_rmse") is not None:
            rmse.labels(model=label).set(figures["test_rmse"])
        if figures.get("test_ndcg@10") is not None:
            ndcg.labels(model=label).set(figures["test_ndcg@10"])

    rows = ((service or {}).get("recommendations") or {}).get("rows")
    if rows is not None:
        gauge("table_rows", "Rows of the recommendation table in service.").set(rows)
    quality = (service or {}).get("list_quality") or {}
    coverage = gauge(
        "catalog_coverage",
        "Share of the catalog in any list of the table in service (model=in_service) "
        "and of the popularity baseline for the same users (model=popularity).",
        ("model",),
    )
    for label, key in (("in_service", "model"), ("popularity", "popularity")):
        if (quality.get(key) or {}).get("coverage") is not None:
            coverage.labels(model=label).set(quality[key]["coverage"])

    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise StorageError(path, exc.strerror or str(exc)) from exc


def _model_metrics(run: dict[str, Any] | None, label: str) -> dict[str, Any]:
    """The holdout metrics a run report holds for its own model (the candidate), or for
    the model it put in service (its candidate, if it published)."""
    if not run:
        return {}
    if label == "in_service" and run.get("status") != PUBLISHED:
        return {}
    return (run.get("metrics") or {}).get("candidate") or {}


def _timestamp(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None
