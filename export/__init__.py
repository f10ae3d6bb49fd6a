"""Export (``rec-export``): ``export(config) -> ExportResult``.

    from movierec.export import ExportConfig, export

    result = export(ExportConfig(artifacts="artifacts"))
    result.parity.max_abs_diff

Importing this package needs no PyTorch; calling :func:`export` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from movierec.export.config import ExportConfig

if TYPE_CHECKING:
    from movierec.export.pipeline import ExportResult

__all__ = ["ExportConfig", "ExportResult", "export"]


def export(config: ExportConfig) -> ExportResult:
    """Convert the checkpoint in ``config.artifacts`` to ONNX plus its ID mapping, prove
    it against PyTorch through the scorer's public API, and only then publish the files
    (what ``rec-export`` runs)."""
    from movierec.export.pipeline import run_export

    return run_export(config)


def __getattr__(name: str) -> Any:
    if name == "ExportResult":
        from movierec.export.pipeline import ExportResult

        return ExportResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
