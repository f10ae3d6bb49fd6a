"""Exports other machines can use: the lowest ONNX IR version the opset needs (older
onnxruntimes load it), and no absolute path of this machine in the model's metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from movierec.export.config import ExportConfig
from movierec.export.opsets import (
    MIN_OPSET,
    ONNXRUNTIME_FLOOR_MAX_IR,
    ir_version_for,
    max_supported_opset,
)
from movierec.export.pipeline import REPORT_FILE, run_export
from movierec.serve_batch import contract, load_artifacts
from movierec.serve_batch.cli import cli
from movierec.serve_batch.cli_support import run_command
from movierec.train.checkpoint import load_checkpoint


def lowest_ir_in_onnx_release_table(opset: int) -> int:
    """From onnx.helper.VERSION_TABLE: (release, IR version, ai.onnx opset, ...) rows."""
    return min(row[1] for row in onnx.helper.VERSION_TABLE if row[2] >= opset)


@pytest.mark.parametrize("opset", range(MIN_OPSET, max_supported_opset() + 1))
def test_ir_version_is_the_lowest_the_opset_needs(opset) -> None:
    assert ir_version_for(opset) == lowest_ir_in_onnx_release_table(opset)


def test_opsets_17_to_20_load_in_the_onnxruntime_floor() -> None:
    # onnxruntime 1.17 (the declared floor) reads IR <= 9; every opset it knows fits
    assert [ir_version_for(o) for o in range(17, 21)] == [8, 8, 9, 9]
    assert max(ir_version_for(o) for o in range(17, 21)) <= ONNXRUNTIME_FLOOR_MAX_IR


@pytest.fixture(scope="module", params=[17, 20])
def exported(request, trained_artifacts, tmp_path_factory):
    if request.param > max_supported_opset():
        pytest.skip(f"opset {request.param} is newer than this onnx/onnxruntime support")
    out = tmp_path_factory.mktemp(f"ir{request.param}")
    run_export(
        ExportConfig(artifacts=trained_artifacts, output=out, opset=request.param, quiet=True)
    )
    return request.param, out


def test_files_report_and_metadata_carry_the_ir_version(exported) -> None:
    opset, out = exported
    want = lowest_ir_in_onnx_release_table(opset)
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["ir_version"] == want
    assert report["metadata"][contract.META_IR_VERSION] == str(want)
    for name in (contract.MODEL_FILE, contract.CATALOG_FILE):
        model = onnx.load(str(out / name))
        assert model.ir_version == want, name
        assert {o.domain: o.version for o in model.opset_import}[""] == opset
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta[contract.META_IR_VERSION] == str(want)
        onnx.checker.check_model(model, full_check=True)
    # the catalog graph names the final bytes of model.onnx, IR version included
    catalog = onnx.load(str(out / contract.CATALOG_FILE))
    recorded = {p.key: p.value for p in catalog.metadata_props}[contract.META_MODEL_SHA256]
    assert recorded == hashlib.sha256((out / contract.MODEL_FILE).read_bytes()).hexdigest()


def test_rewritten_ir_version_scores_like_the_exporters_own(exported) -> None:
    """The same graph at IR 10 (what torch's exporter writes) and at the lowest IR version
    gives the same scores, bit for bit: the IR number changes which runtimes accept the
    file, not the arithmetic."""
    _, out = exported
    newest = onnx.load(str(out / contract.MODEL_FILE))
    newest.ir_version = 10
    newest_path = out / "newest_ir.onnx"
    onnx.save_model(newest, str(newest_path))
    mapping = out / contract.MAPPING_FILE
    low = load_artifacts(out / contract.MODEL_FILE, mapping, threads=1)
    high = load_artifacts(newest_path, mapping, threads=1)
    users = np.repeat(low.users.ids[:20], 7)
    movies = np.resize(low.movies.ids, users.size)
    a, b = low.predict_ids(users, movies), high.predict_ids(users, movies)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    np.testing.assert_array_equal(a.rank_scores, b.rank_scores)


def test_metadata_and_manifest_hold_no_absolute_path(
    exported, trained_artifacts, synthetic_ml100k, tmp_path
) -> None:
    """The fixture trained with absolute --data and --artifacts: the checkpoint, the
    metrics and the model record them relative to the artifacts folder."""
    _, out = exported
    assert Path(synthetic_ml100k).is_absolute() and Path(trained_artifacts).is_absolute()
    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    metrics = json.loads((trained_artifacts / contract.METRICS_FILE).read_text())
    for recorded in (ckpt.train_config, metrics["config"]):
        assert (trained_artifacts / recorded["data"]).resolve() == synthetic_ml100k.resolve()
        assert recorded["artifacts"] == "."
    assert (trained_artifacts / metrics["data"]["path"]).resolve() == synthetic_ml100k.resolve()

    meta = {p.key: p.value for p in onnx.load(str(out / contract.MODEL_FILE)).metadata_props}
    hyper = json.loads(meta[contract.META_HYPERPARAMETERS])
    assert hyper["data"] == ckpt.train_config["data"] and not Path(hyper["data"]).is_absolute()

    users = tmp_path / "users.csv"
    mapping = json.loads((out / contract.MAPPING_FILE).read_text())
    users.write_text("user_id\n" + "\n".join(list(mapping[contract.MAPPING_USER_INDEX])[:3]))
    output = tmp_path / "top.csv"
    argv = [str(users), str(output), "--all-movies", "--artifacts", str(out), "--quiet"]
    assert run_command(cli, argv) == 0
    manifest = json.loads(output.with_name("top.csv.manifest.json").read_text())
    model_section = json.dumps(manifest["model"]["metadata"])
    for machine_path in (str(synthetic_ml100k), str(trained_artifacts)):
        assert machine_path not in model_section
