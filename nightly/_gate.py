"""The quality gate: is the candidate model good enough to replace the one in service?

Both models' holdout metrics are compared as each run recorded them in its
``metrics.json`` (test RMSE and NDCG@10 on that run's own seeded test split). The
candidate is refused when its test RMSE is higher by more than ``max_rmse_increase`` or
its NDCG@10 lower by more than ``max_ndcg_drop``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from movierec.serve_batch import contract
from movierec.serve_batch.errors import ArtifactError

RMSE = "rmse"
NDCG = "ndcg@10"


@dataclass
class GateDecision:
    """``publish``: whether the candidate goes into service; ``reason``: one sentence."""

    publish: bool
    decision: str  # "first", "passed", "refused" or "forced"
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def holdout(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics the gate and the run report use, from a ``metrics.json``."""
    test = metrics.get("test") or {}
    refit = metrics.get("refit") or None
    return {
        "test_rmse": test.get(RMSE),
        "test_ndcg@10": test.get(NDCG),
        "val_rmse": (metrics.get("val") or {}).get(RMSE),
        "best_epoch": metrics.get("best_epoch"),
        "refit": bool(refit),
        "refit_ratings": refit.get("ratings") if refit else None,
    }


def read_service_metrics(model_dir: Path) -> dict[str, Any]:
    """The in-service model's recorded ``metrics.json`` (``ArtifactError`` if unreadable)."""
    path = Path(model_dir) / contract.METRICS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(
            f"{path}: the model in service has no recorded metrics to compare with; "
            "use --force to publish without the gate"
        ) from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read the service model's metrics ({exc})") from None


def decide(
    candidate: dict[str, Any],
    service: dict[str, Any] | None,
    *,
    max_rmse_increase: float,
    max_ndcg_drop: float,
    force: bool = False,
) -> GateDecision:
    """Compare ``candidate`` with ``service`` (both :func:`holdout` dicts; None: nothing in
    service yet). ``force`` publishes a refused candidate and says so."""
    if service is None:
        return GateDecision(True, "first", "no model in service yet: nothing to compare with")
    checks = [
        _check("test RMSE", candidate["test_rmse"], service["test_rmse"], max_rmse_increase),
        _check(
            "NDCG@10",
            candidate["test_ndcg@10"],
            service["test_ndcg@10"],
            max_ndcg_drop,
            higher_is_better=True,
        ),
    ]
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        summary = "; ".join(c["text"] for c in checks)
        return GateDecision(True, "passed", f"within the tolerances: {summary}", checks)
    why = "; ".join(c["text"] for c in failed)
    if force:
        return GateDecision(True, "forced", f"--force published it although {why}", checks)
    return GateDecision(False, "refused", why, checks)


def _check(
    name: str, got: Any, service: Any, tolerance: float, higher_is_better: bool = False
) -> dict[str, Any]:
    """``got`` may be worse than ``service`` by at most ``tolerance``."""
    if not _finite(got) or not _finite(service):
        return {
            "metric": name,
            "candidate": got,
            "service": service,
            "passed": False,
            "text": f"{name} cannot be compared (candidate {got}, service {service})",
        }
    if higher_is_better:
        limit = service - tolerance
        passed = got >= limit
        text = f"{name} {got:.4f} vs {service:.4f} in service (at least {limit:.4f} needed)"
    else:
        limit = service + tolerance
        passed = got <= limit
        text = f"{name} {got:.4f} vs {service:.4f} in service (at most {limit:.4f} allowed)"
    return {
        "metric": name,
        "candidate": got,
        "service": service,
        "limit": limit,
        "passed": bool(passed),
        "text": text,
    }


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
