"""``rec-nightly status``: what is in service, how the last run went, what the next prune
removes, read from the home folder without taking the lock (nothing is written).

The figures are the run reports' (``runs/VERSION.json``) and the files' own: the links,
and the table's row count from its Parquet footer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from movierec.nightly._home import Home
from movierec.nightly._runs import read_run, read_runs
from movierec.serve_batch.errors import UsageError


def read_status(root: Path, keep: int | None = None) -> dict[str, Any]:
    """The status of the home folder ``root`` (JSON-ready). ``keep``: the ``--keep`` of
    the next run, for what its prune removes (default: the last run's)."""
    home = Home(root)
    if not home.runs.is_dir() and not home.models.is_dir():
        raise UsageError(f"{root} is not a rec-nightly home folder (no runs/ nor models/ in it)")
    runs = read_runs(home)
    last = runs[-1] if runs else None
    if keep is None:
        keep = next(
            (r["config"]["keep"] for r in reversed(runs) if (r.get("config") or {}).get("keep")),
            None,
        )
    return {
        "home": str(home.root),
        "in_service": service_status(home),
        "last_run": run_summary(last) if last else None,
        "runs": {
            "total": len(runs),
            **{s: sum(r.get("status") == s for r in runs) for s in _statuses(runs)},
        },
        "kept": {"versions": home.versions(), "rejected": home.rejected()},
        "next_prune": (
            {
                "keep": keep,
                "if_the_next_run_publishes": home.prune_plan(keep, publishing=True),
            }
            if keep
            else None
        ),
    }


def service_status(home: Home) -> dict[str, Any] | None:
    version, table_version = home.in_service(), home.latest_table()
    if version is None:
        return None
    run = read_run(home, version) or {}
    candidate = (run.get("metrics") or {}).get("candidate") or {}
    recs = run.get("recommendations") or {}
    quality = run.get("list_quality") or {}
    rows = None
    if home.latest.exists():
        rows = pq.ParquetFile(home.latest).metadata.num_rows
    return {
        "version": version,
        "table_version": table_version,
        "links_agree": table_version == version,
        "published_at": run.get("finished_at"),
        "test_rmse": candidate.get("test_rmse"),
        "test_ndcg@10": candidate.get("test_ndcg@10"),
        "table": {
            "path": str(home.latest),
            "rows": rows,
            "users": recs.get("users"),
            "top_k": recs.get("top_k"),
        },
        "list_quality": {
            who: {
                k: (quality.get(who) or {}).get(k) for k in ("coverage", "top_1pct_share", "gini")
            }
            for who in ("model", "popularity")
        }
        if quality
        else None,
    }


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """The few facts of one run that say how it went."""
    reason = (
        (run.get("gate") or {}).get("reason")
        if (run.get("gate") or {}).get("decision") == "refused"
        else None
    )
    if run.get("status") == "refused" and not reason:
        reason = (run.get("data_gate") or {}).get("reason")
    return {
        "version": run.get("version"),
        "status": run.get("status"),
        "exit_code": run.get("exit_code"),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "wall_seconds": run.get("wall_seconds"),
        "reason": reason or run.get("error") or run.get("untouched"),
        "rollback": run.get("rollback"),
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as lines for a person."""
    lines = [f"home       {status['home']}"]
    service = status["in_service"]
    if service is None:
        lines.append("in service nothing yet")
    else:
        lines.append(f"in service {service['version']}, published {service['published_at'] or '?'}")
        if not service["links_agree"]:
            lines.append(
                f"           WARNING: latest.parquet points at {service['table_version']}, "
                f"models/current at {service['version']}"
            )
        lines.append(
            f"           test RMSE {_num(service['test_rmse'])}, "
            f"NDCG@10 {_num(service['test_ndcg@10'])}"
        )
        table = service["table"]
        lines.append(
            f"           table {table['path']}: {_count(table['rows'])} rows for "
            f"{_count(table['users'])} users (top {table['top_k'] or '?'})"
        )
        quality = service["list_quality"]
        if quality:
            for who, label in (("model", "lists"), ("popularity", "popularity")):
                q = quality[who]
                lines.append(
                    f"           {label:<10} coverage {_pct(q['coverage'])}, 1% most-rated "
                    f"take {_pct(q['top_1pct_share'])} of slots, Gini {_num(q['gini'], 3)}"
                )
    last = status["last_run"]
    if last is None:
        lines.append("last run   none recorded")
    else:
        code = "" if last["exit_code"] is None else f", exit {last['exit_code']}"
        wall = "" if last["wall_seconds"] is None else f", {last['wall_seconds']:.1f} s"
        lines.append(f"last run   {last['version']}: {last['status']}{code}{wall}")
        if last["reason"]:
            lines.append(f"           {last['reason']}")
    runs = status["runs"]
    counts = ", ".join(f"{n} {s}" for s, n in runs.items() if s != "total" and n)
    lines.append(f"runs       {runs['total']} recorded" + (f" ({counts})" if counts else ""))
    kept = status["kept"]
    lines.append(
        f"kept       {len(kept['versions'])} versions, {len(kept['rejected'])} refused candidates"
    )
    prune = status["next_prune"]
    if prune is None:
        lines.append("next prune unknown (no run recorded its --keep)")
    else:
        removes = ", ".join(prune["if_the_next_run_publishes"]) or "nothing"
        lines.append(f"next prune --keep {prune['keep']}: removes {removes}")
    return "\n".join(lines)


def _statuses(runs: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for r in runs:
        if r.get("status") not in seen:
            seen.append(r.get("status"))
    return seen


def _num(value: Any, digits: int = 4) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "?" if value is None else f"{100 * value:.1f}%"


def _count(value: Any) -> str:
    return "?" if value is None else f"{value:,}"
