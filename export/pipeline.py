"""``run_export``: checkpoint -> ONNX + ID mapping, proven against PyTorch, then published."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from movierec.export.config import GRAPHS, ExportConfig
from movierec.export.folding import CatalogNet, FoldedNet, ScoringModule
from movierec.export.mapping import build_mapping, encode_mapping, exported_rows
from movierec.export.onnx_export import export_catalog_onnx, export_onnx
from movierec.export.opsets import ONNXRUNTIME_FLOOR_MAX_IR, check_opset, ir_version_for
from movierec.export.parity import ParityReport, check_parity
from movierec.serve_batch import contract, load_artifacts
from movierec.serve_batch.atomic import AtomicOutputs, temp_path_beside
from movierec.serve_batch.errors import ParityError, UsageError
from movierec.train.checkpoint import Checkpoint, load_checkpoint, package_version, utc_now

log = logging.getLogger(__name__)

REPORT_FILE = "export_report.json"


@dataclass
class ExportResult:
    model_path: Path
    mapping_path: Path
    parity: ParityReport
    metadata: dict[str, str]
    catalog_path: Path | None = None


def build_metadata(
    ckpt: Checkpoint, config: ExportConfig, mapping_sha256: str, graph: str
) -> dict[str, str]:
    """The model's ``metadata_props``: provenance the scorer and people can read back."""
    metrics = {k: ckpt.metrics[k] for k in ("val", "test") if k in ckpt.metrics}
    return {
        contract.META_FORMAT_VERSION: str(contract.FORMAT_VERSION),
        contract.META_PACKAGE_VERSION: package_version(),
        contract.META_ARCH: json.dumps(ckpt.model.config.to_dict(), sort_keys=True),
        contract.META_HYPERPARAMETERS: json.dumps(ckpt.train_config, sort_keys=True),
        contract.META_METRICS: json.dumps(metrics, sort_keys=True),
        contract.META_DATA_FINGERPRINT: ckpt.data_fingerprint,
        contract.META_MAPPING_SHA256: mapping_sha256,
        contract.META_RATING_MIN: repr(float(ckpt.rating_scale[0])),
        contract.META_RATING_MAX: repr(float(ckpt.rating_scale[1])),
        contract.META_OPSET: str(config.opset),
        contract.META_IR_VERSION: str(ir_version_for(config.opset)),
        contract.META_CREATED_AT: utc_now(),
        contract.META_GRAPH: graph,
    }


def prepare_output_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        temp_path_beside(path / "probe").unlink()
    except OSError as exc:
        raise UsageError(
            f"cannot write to the output folder {path}: {exc.strerror or exc}"
        ) from None


def run_export(config: ExportConfig, checkpoint: Checkpoint | None = None) -> ExportResult:
    """Export, verify parity with the scorer's code, and only then publish the files.

    ``checkpoint``: the trained model in memory (a nightly run's, which need not write it
    and read it back); by default ``config.checkpoint_path`` is read.

    Writes the pairs graph (``model.onnx``), the catalog graph (``catalog.onnx``, the
    folded tables turned into top-k of a block of users x every movie) and the ID mapping.
    Nothing is published unless every check passes; then the files are renamed into
    place together (``AtomicOutputs``, the scorer's own): the mapping first, then the
    catalog graph, then the model, so a model never sits beside a mapping it was not
    built with (the scorer also refuses such a pair by the mapping's SHA-256,
    and a catalog graph of another export by the model's).
    """
    check_opset(config.opset)
    ckpt = checkpoint if checkpoint is not None else load_checkpoint(config.checkpoint_path)
    out = config.output_dir
    prepare_output_dir(out)
    fallback = ckpt.fallback()
    rows = exported_rows(fallback)  # None: every row of the model is known
    mapping_bytes, mapping_sha = encode_mapping(build_mapping(ckpt, fallback))
    if config.graph not in GRAPHS:
        raise UsageError(f"--graph must be one of {', '.join(GRAPHS)}, got {config.graph!r}")
    metadata = build_metadata(ckpt, config, mapping_sha, graph=config.graph)
    with AtomicOutputs() as staged:
        # committed in this order: the mapping, the catalog graph, the model, the report
        tmp_mapping = staged.reserve(config.mapping_path)
        tmp_catalog = staged.reserve(config.catalog_path)
        tmp_model = staged.reserve(config.model_path)
        tmp_report = staged.reserve(out / REPORT_FILE)
        tmp_mapping.write_bytes(mapping_bytes)
        ir_version = ir_version_for(config.opset)
        log.info(
            "exporting the %s checkpoint as the %s graph and the catalog graph at opset %d "
            "(ONNX IR version %d)",
            ckpt.model.config.arch,
            config.graph,
            config.opset,
            ir_version,
        )
        if ir_version > ONNXRUNTIME_FLOOR_MAX_IR:
            log.warning(
                "opset %d needs ONNX IR version %d, which onnxruntime 1.17 (the oldest that "
                "movierec accepts) cannot load: score this model with a newer onnxruntime, "
                "or export at opset 20 or lower",
                config.opset,
                ir_version,
            )
        graph = FoldedNet if config.graph == "folded" else ScoringModule
        module = graph(ckpt.model, rows)
        export_onnx(module, tmp_model, config.opset, metadata)
        catalog_metadata = {
            **metadata,
            contract.META_GRAPH: "catalog",
            contract.META_MODEL_SHA256: hashlib.sha256(tmp_model.read_bytes()).hexdigest(),
        }
        catalog = CatalogNet(ckpt.model, rows)
        export_catalog_onnx(
            catalog,
            tmp_catalog,
            catalog.n_movies,
            config.opset,
            catalog_metadata,
        )
        arts = load_artifacts(tmp_model, tmp_mapping, catalog_path=tmp_catalog)
        report = check_parity(
            ckpt,
            arts,
            config.atol,
            config.parity_pairs,
            config.seed,
            config.parity_test_pairs,
            known=fallback,
        )
        for check in report.checks:
            log.info(
                "  %s %-40s %7d pairs  max |diff| %.3g",
                "ok  " if check.passed else "FAIL",
                check.name,
                check.pairs,
                check.max_abs_diff,
            )
        log.info(
            "test RMSE: %.6f from ONNX via the scorer (%d of %d test pairs), %.6f recorded "
            "at training%s",
            report.onnx_test_rmse,
            report.test_pairs_checked,
            report.test_pairs,
            report.train_test_rmse,
            " (holdout of the evaluation run; this refit model trained on the test ratings)"
            if ckpt.metrics.get("refit")
            else "",
        )
        if not report.passed:
            worst = max(report.failures(), key=lambda c: c.max_abs_diff)
            raise ParityError(
                f"the ONNX model differs from PyTorch by up to {worst.max_abs_diff:.3g} "
                f"({worst.name}; {len(report.failures())} check(s) failed, tolerance "
                f"{config.atol:g}); nothing was written"
            )
        write_report(tmp_report, config, report, metadata)
        staged.commit()
    return ExportResult(
        config.model_path, config.mapping_path, report, metadata, config.catalog_path
    )


def write_report(
    path: Path, config: ExportConfig, report: ParityReport, metadata: dict[str, str]
) -> None:
    payload = {
        "config": config.to_dict(),
        "parity": report.to_dict(),
        "metadata": metadata,
        "ir_version": int(metadata[contract.META_IR_VERSION]),
        "onnxruntime": ort.__version__,
    }
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")
