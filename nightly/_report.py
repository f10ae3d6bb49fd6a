"""``report.html``: the nights of a home folder on one self-contained page.

Rendered from the run reports alone (``runs/*.json``) with a Jinja2 template shipped in
the package (``report.html.j2``); the plots are matplotlib SVG inside the page
(``_report_plots``), and there is no script, stylesheet, font or image to fetch, so the
file reads the same from a mail attachment as from the server. Written after every run
as ``DIR/report.html`` and by ``rec-nightly report``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from movierec.nightly._home import Home
from movierec.nightly._runs import PUBLISHED, ROLLED_BACK, read_run, read_runs
from movierec.serve_batch.atomic import atomic_path

REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"
#: Nights shown by default (the table and the plots); the run reports keep them all.
DEFAULT_NIGHTS = 90


def write_html_report(home: Home, out: Path | None = None, nights: int = DEFAULT_NIGHTS) -> Path:
    """Render the report of ``home`` into ``out`` (default ``DIR/report.html``), whole or
    not at all; ``nights``: the newest runs to show (0: all). Returns the path."""
    out = Path(out) if out is not None else home.root / REPORT_FILE
    html = render_html_report(home, nights)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out


def render_html_report(home: Home, nights: int = DEFAULT_NIGHTS) -> str:
    """The page as a string (see :func:`write_html_report`)."""
    from markupsafe import Markup

    from movierec.nightly._report_plots import plot_nights

    runs = read_runs(home)
    shown = runs[-nights:] if nights else runs
    context = {
        "home": str(home.root),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs_total": len(runs),
        "runs_shown": len(shown),
        "service": in_service(home, runs),
        "nights": [night_row(r) for r in reversed(shown)],  # newest first
        "plots": (
            {k: Markup(v) for k, v in plot_nights(shown).items()}  # noqa: S704 (our own SVG)
            if shown
            else {}
        ),
    }
    return _environment().get_template(TEMPLATE).render(context)


def in_service(home: Home, runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the report says about the version in service (None before the first)."""
    version = home.in_service()
    if version is None:
        return None
    run = read_run(home, version) or {}
    since = next(
        (
            r.get("finished_at")
            for r in reversed(runs)
            if (r.get("status") == ROLLED_BACK and (r.get("rollback") or {}).get("to") == version)
            or (r.get("status") == PUBLISHED and r.get("version") == version)
        ),
        None,
    )
    candidate = (run.get("metrics") or {}).get("candidate") or {}
    recs = run.get("recommendations") or {}
    return {
        "version": version,
        "published_at": run.get("finished_at"),
        "since": since,
        "test_rmse": candidate.get("test_rmse"),
        "ndcg": candidate.get("test_ndcg@10"),
        "rows": recs.get("rows"),
        "users": recs.get("users"),
        "top_k": recs.get("top_k"),
        "quality": run.get("list_quality"),
        "top_movies": (run.get("list_quality") or {}).get("top_movies"),
        "samples": recs.get("samples"),
    }


def night_row(run: dict[str, Any]) -> dict[str, Any]:
    """One row of the table of nights."""
    candidate = (run.get("metrics") or {}).get("candidate") or {}
    note = run.get("error") or run.get("untouched")
    if run.get("status") == ROLLED_BACK:
        rb = run.get("rollback") or {}
        note = f"{rb.get('from')} -> {rb.get('to')}"
    elif run.get("status") == "refused":
        note = ((run.get("gate") or {}).get("reason")) or (run.get("data_gate") or {}).get("reason")
    return {
        "version": run.get("version"),
        "status": run.get("status"),
        "exit_code": run.get("exit_code"),
        "data_gate": (run.get("data_gate") or {}).get("decision"),
        "gate": (run.get("gate") or {}).get("decision"),
        "test_rmse": candidate.get("test_rmse"),
        "ndcg": candidate.get("test_ndcg@10"),
        "rows": (run.get("recommendations") or {}).get("rows"),
        "wall": run.get("wall_seconds"),
        "note": note,
    }


def _environment():
    import jinja2

    template = resources.files("movierec.nightly").joinpath(TEMPLATE)
    env = jinja2.Environment(
        loader=jinja2.DictLoader({TEMPLATE: template.read_text(encoding="utf-8")}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fixed"] = _fixed
    env.filters["percent"] = lambda v: "" if _missing(v) else f"{100 * v:.1f}%"
    env.filters["count_of"] = lambda n, noun: (
        "?" if n is None else f"{n:,} {noun}{'' if n == 1 else 's'}"
    )
    return env


def _fixed(value: Any, digits: int) -> str:
    return "" if _missing(value) else f"{value:.{digits}f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
