"""The data gate: is tonight's data fit to train on, before any training?

The quality gate compares holdout figures, and a model trained on a truncated export
can score as well on its own (truncated) holdout as yesterday's did: the gate cannot
see that most users are gone. This gate looks at the data itself. Tonight's counts are
compared with those the last published run recorded (``runs/VERSION.json`` ``data``):
the run is refused when the ratings, users or movies shrank by more than
``max_drop``, or when the newest rating is older than the newest one the model in
service saw (an old export put back in place). The first run has nothing to compare
with; ``force`` publishes anyway and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

#: The counts compared, as recorded in ``runs/VERSION.json`` ``data``.
COUNTED = ("ratings", "users", "movies")


@dataclass(frozen=True)
class DataCounts:
    """What the gate compares: sizes, and the newest rating time (ISO 8601, UTC;
    None where the data has no rating times)."""

    ratings: int
    users: int
    movies: int
    newest_rating_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_ratings(users: np.ndarray, movies: np.ndarray, times: np.ndarray | None) -> DataCounts:
    """Counts of a ratings table given as its columns (``times``: Unix seconds)."""
    return DataCounts(
        ratings=int(len(users)),
        users=int(len(np.unique(users))),
        movies=int(len(np.unique(movies))),
        newest_rating_at=newest_rating_at(times),
    )


def newest_rating_at(times: np.ndarray | None) -> str | None:
    """The newest of ``times`` (Unix seconds) in ISO 8601, UTC; None without times."""
    if times is None or not len(times):
        return None
    return iso_utc(int(np.max(times)))


def iso_utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@dataclass
class DataGateDecision:
    """``passed``: train on it; ``decision``: first, passed, refused or forced."""

    passed: bool
    decision: str
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    compared_with: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_data(
    tonight: DataCounts,
    last_published: dict[str, Any] | None,
    in_service: dict[str, Any] | None,
    *,
    max_drop: float,
    force: bool = False,
) -> DataGateDecision:
    """Compare ``tonight`` with two run reports: ``last_published`` (the newest run that
    published, for the counts) and ``in_service`` (the run that published the model in
    service, for the newest rating time); either may be None."""
    compared = {
        "counts": (last_published or {}).get("version"),
        "newest_rating": (in_service or {}).get("version"),
    }
    checks = []
    before = (last_published or {}).get("data") or {}
    for name in COUNTED:
        if isinstance(before.get(name), int) and before[name] > 0:
            checks.append(_shrink_check(name, getattr(tonight, name), before[name], max_drop))
    seen = ((in_service or {}).get("data") or {}).get("newest_rating_at")
    if seen and tonight.newest_rating_at:
        checks.append(_freshness_check(tonight.newest_rating_at, seen, compared["newest_rating"]))
    if not checks:
        if last_published is None and in_service is None:
            return DataGateDecision(True, "first", "no published run to compare with")
        return DataGateDecision(
            True,
            "passed",
            "the published runs recorded no data counts to compare with",
            checks,
            compared,
        )
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        source = compared["counts"] or compared["newest_rating"]
        return DataGateDecision(
            True, "passed", f"tonight's data is in line with {source}'s", checks, compared
        )
    why = "; ".join(c["text"] for c in failed)
    if force:
        return DataGateDecision(
            True, "forced", f"--force trained on it although {why}", checks, compared
        )
    return DataGateDecision(False, "refused", why, checks, compared)


def _shrink_check(name: str, got: int, before: int, max_drop: float) -> dict[str, Any]:
    drop = 1.0 - got / before
    passed = drop <= max_drop
    change = f"down {drop:.1%}" if drop > 0 else f"up {-drop:.1%}"
    text = (
        f"{name} {got:,} vs {before:,} in the last published run: {change} "
        f"(a drop of at most {max_drop:.1%} allowed)"
    )
    return {
        "check": name,
        "tonight": got,
        "before": before,
        "drop": round(drop, 6),
        "passed": passed,
        "text": text,
    }


def _freshness_check(newest: str, seen: str, service_version: str | None) -> dict[str, Any]:
    passed = datetime.fromisoformat(newest) >= datetime.fromisoformat(seen)
    text = (
        f"the newest rating, {newest}, is "
        + ("not older than" if passed else "older than")
        + f" the newest the model in service ({service_version}) saw, {seen}"
    )
    return {
        "check": "newest_rating_at",
        "tonight": newest,
        "before": seen,
        "passed": passed,
        "text": text,
    }
