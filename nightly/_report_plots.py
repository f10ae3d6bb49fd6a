"""The report's plots over the nights, drawn with matplotlib as inline SVG.

Text is drawn as paths (matplotlib's default ``svg.fonttype``), so the page needs no
font; each figure gets its own ``svg.hashsalt``, so the element IDs of two figures in
one page never collide, and the same runs give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

#: Stages in the order a run goes through them (later ones are drawn on top).
STAGE_ORDER = (
    "load",
    "data_gate",
    "train",
    "refit",
    "export",
    "gate",
    "score",
    "list_quality",
    "publish",
)
STATUS_MARKERS = {"published": "o", "refused": "X", "failed": "s", "interrupted": "D"}
#: At most this many version labels under an axis (every n-th night beyond).
MAX_TICKS = 14


def plot_nights(runs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each plot's SVG (``metrics``, ``stages``, ``memory``, ``data``, ``lists``) over
    ``runs`` (run reports, oldest first; rollbacks are left out: they train nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    nights = [r for r in runs if r.get("status") != "rolled-back"]
    labels = [r["version"] for r in nights]
    draw: dict[str, Callable] = {
        "metrics": _metrics,
        "stages": _stages,
        "memory": _memory,
        "data": _data,
        "lists": _lists,
    }
    return {name: _svg(name, fn, nights, labels) for name, fn in draw.items()}


def _svg(name: str, draw: Callable, nights: list[dict], labels: list[str]) -> str:
    import matplotlib.pyplot as plt

    with plt.rc_context({"svg.hashsalt": f"movierec-{name}", "font.size": 8}):
        fig = draw(plt, nights, labels)
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
        plt.close(fig)
    text = out.getvalue()
    return text[text.index("<svg") :]  # no XML declaration nor DOCTYPE inside HTML


def _x_axis(ax, labels: list[str]) -> None:
    step = max(1, -(-len(labels) // MAX_TICKS))
    ticks = list(range(0, len(labels), step))
    ax.set_xticks(ticks, [_short(labels[i]) for i in ticks], rotation=30, ha="right")
    ax.set_xlim(-0.5, max(len(labels) - 0.5, 0.5))
    ax.grid(alpha=0.3)


def _short(version: str) -> str:
    """``20250301T021500Z`` as ``03-01 02:15`` (the table below the plots has the rest)."""
    if len(version) >= 15 and version[8] == "T":
        return f"{version[4:6]}-{version[6:8]} {version[9:11]}:{version[11:13]}"
    return version


def _series(nights: list[dict], get: Callable[[dict], Any]) -> list[float]:
    out = []
    for run in nights:
        try:
            value = get(run)
        except (KeyError, TypeError, AttributeError):
            value = None
        out.append(float("nan") if value is None else float(value))
    return out


def _by_status(ax, nights: list[dict], values: list[float], color: str, label: str) -> None:
    """A line through the nights, each point marked by its run's status."""
    xs = range(len(values))
    ax.plot(xs, values, color=color, lw=1, alpha=0.6)
    for status, marker in STATUS_MARKERS.items():
        pts = [
            (x, v)
            for x, v, r in zip(xs, values, nights, strict=True)
            if r["status"] == status and v == v  # NaN: nothing measured that night
        ]
        if pts:
            px, py = zip(*pts, strict=True)
            ax.scatter(
                px, py, marker=marker, color=color, s=22, zorder=3, label=f"{label}, {status}"
            )


def _metrics(plt, nights: list[dict], labels: list[str]):
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    cand = lambda key: lambda r: r["metrics"]["candidate"][key]  # noqa: E731
    for ax, key, title, color in (
        (axes[0], "test_rmse", "test RMSE (lower is better)", "tab:blue"),
        (axes[1], "test_ndcg@10", "test NDCG@10 (higher is better)", "tab:green"),
    ):
        _by_status(ax, nights, _series(nights, cand(key)), color, "candidate")
        ax.set_title(title)
        _x_axis(ax, labels)
    _legend(axes[0])
    return fig


def _legend(ax) -> None:
    """A legend where something was drawn (a night with nothing measured draws nothing)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="best")


def _stages(plt, nights: list[dict], labels: list[str]):
    fig, ax = plt.subplots(figsize=(9, 3))
    bottom = [0.0] * len(nights)
    names = [s for s in STAGE_ORDER if any(s in (r.get("stages") or {}) for r in nights)]
    names += sorted({s for r in nights for s in r.get("stages") or {}} - set(names))
    for i, name in enumerate(names):
        secs = _series(nights, lambda r, n=name: r["stages"][n].get("wall_seconds"))
        secs = [0.0 if s != s else s for s in secs]  # NaN: the stage did not run
        ax.bar(range(len(nights)), secs, bottom=bottom, label=name, color=f"C{i % 10}")
        bottom = [b + s for b, s in zip(bottom, secs, strict=True)]
    ax.set_title("wall time by stage (s)")
    if names:  # beside the bars, never over them
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    _x_axis(ax, labels)
    return fig


def _memory(plt, nights: list[dict], labels: list[str]):
    fig, ax = plt.subplots(figsize=(9, 2.8))
    peak = _series(nights, lambda r: r.get("process_peak_rss_mib"))
    stage_peak = _series(
        nights,
        lambda r: max(
            (s["peak_rss_mib"] for s in r["stages"].values() if "peak_rss_mib" in s),
            default=None,
        ),
    )
    _by_status(ax, nights, peak, "tab:red", "process peak")
    _by_status(ax, nights, stage_peak, "tab:purple", "largest stage peak")
    ax.set_title("peak resident memory (MiB)")
    _legend(ax)
    _x_axis(ax, labels)
    return fig


def _data(plt, nights: list[dict], labels: list[str]):
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
    for ax, key, color in zip(
        axes, ("ratings", "users", "movies"), ("tab:blue", "tab:orange", "tab:green"), strict=True
    ):
        _by_status(ax, nights, _series(nights, lambda r, k=key: r["data"][k]), color, key)
        ax.set_title(f"{key} in the data")
        _x_axis(ax, labels)
    return fig


def _lists(plt, nights: list[dict], labels: list[str]):
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
    for ax, key, title in zip(
        axes,
        ("coverage", "top_1pct_share", "gini"),
        ("catalog coverage", "slots taken by the 1% most-rated", "Gini index of appearances"),
        strict=True,
    ):
        for who, style in (("model", "-"), ("popularity", "--")):
            values = _series(nights, lambda r, w=who, k=key: r["list_quality"][w][k])
            ax.plot(range(len(values)), values, style, marker="o", ms=3, label=who)
        ax.set_title(title)
        ax.set_ylim(0, 1.02)
        _x_axis(ax, labels)
    _legend(axes[0])
    return fig
