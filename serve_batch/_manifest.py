"""The JSON run summary written beside every output (``OUTPUT.manifest.json``)."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa

from movierec.serve_batch import contract
from movierec.serve_batch._artifacts import Artifacts
from movierec.serve_batch._config import ScoreConfig

MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(output: Path) -> Path:
    """``out.parquet`` -> ``out.parquet.manifest.json``."""
    output = Path(output)
    return output.with_name(output.name + MANIFEST_SUFFIX)


def build_manifest(
    *,
    mode: str,
    config: ScoreConfig,
    arts: Artifacts,
    started_at: datetime,
    elapsed: float,
    rows_read: int,
    rows_written: int,
    details: dict[str, Any],
    engine: dict[str, Any],
) -> dict[str, Any]:
    """Collect what a reader of the output needs to trust it: inputs, model, counts, speed.

    ``engine``: what the executor reports (its name, for Ray the cluster and actors);
    its ``runtime`` entry overrides the runtime section's (a Ray actor's threads)."""
    meta = arts.metadata
    engine = dict(engine)
    runtime = engine.pop("runtime", {})
    return {
        "tool": "rec-score",
        "mode": mode,
        "package_version": _package_version(),
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "rows_read": rows_read,
        "rows_written": rows_written,
        **details,
        "model": {
            "path": str(arts.model_path),
            "sha256": arts.model_sha256,
            "opset": meta.get(contract.META_OPSET),
            "format_version": meta.get(contract.META_FORMAT_VERSION),
            "graph": meta.get(contract.META_GRAPH),
            "rank_output": arts.has_rank_score,
            "rating_scale": list(arts.rating_scale),
            "metadata": meta,
        },
        "mapping": {
            "path": str(arts.mapping_path),
            "sha256": arts.mapping_sha256,
            "users": len(arts.users),
            "movies": len(arts.movies),
        },
        "runtime": {
            "onnxruntime": ort.__version__,
            "pyarrow": pa.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "providers": ["CPUExecutionProvider"],
            "intra_op_threads": arts.intra_op_threads,
            "parallel_calls": arts.parallel_calls,
            "pairs_per_call": arts.run_rows,
            "graph_optimization": config.runtime.graph_opt,
            "execution_mode": "sequential",
            **runtime,
        },
        "engine": engine,
        "elapsed_seconds": round(elapsed, 4),
        **rates(mode, elapsed, rows_read, details),
    }


def rates(mode: str, elapsed: float, rows_read: int, details: dict[str, Any]) -> dict[str, Any]:
    """Speeds named by what they count: input pairs (pairs mode); users, and the candidate
    pairs scored for them (catalog mode)."""

    def per_second(count: int) -> float | None:
        return round(count / elapsed, 1) if elapsed > 0 else None

    if mode == "catalog":
        users = details.get("users") or {}
        return {
            "users_per_second": per_second(int(users.get("scored", 0))),
            "candidate_pairs_per_second": per_second(int(details.get("pairs_scored", 0))),
        }
    return {"pairs_per_second": per_second(rows_read)}


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, allow_nan=False, default=jsonable)
        fh.write("\n")


def _package_version() -> str:
    try:
        return importlib_metadata.version("movierec")
    except importlib_metadata.PackageNotFoundError:
        return "unknown (not installed)"


def jsonable(value: Any) -> Any:
    """``json.dumps``' ``default``: numpy scalars and paths as plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
