import hashlib
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pytest
import torch

from movierec.export import parity as export_parity
from movierec.export.cli import cli
from movierec.export.config import ExportConfig
from movierec.export.opsets import max_supported_opset
from movierec.export.pipeline import REPORT_FILE, run_export
from movierec.serve_batch import contract, load_artifacts
from movierec.serve_batch.cli_support import run_command
from movierec.serve_batch.errors import ArtifactError, ParityError, UsageError
from movierec.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module", params=[17, 18])
def exported(request, trained_artifacts, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"export{request.param}")
    result = run_export(
        ExportConfig(artifacts=trained_artifacts, output=out, opset=request.param, quiet=True)
    )
    return request.param, out, result


def test_declared_opset_is_the_requested_one(exported):
    opset, out, _ = exported
    model = onnx.load(str(out / contract.MODEL_FILE))
    assert {o.domain: o.version for o in model.opset_import}[""] == opset
    onnx.checker.check_model(model, full_check=True)


def test_io_contract_and_dynamic_batch(exported, trained_artifacts):
    _, out, _ = exported
    sess = ort.InferenceSession(str(out / contract.MODEL_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [contract.INPUT_USER, contract.INPUT_MOVIE]
    assert [o.name for o in sess.get_outputs()] == [contract.OUTPUT_RATING, contract.OUTPUT_RANK]
    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    rng = np.random.default_rng(0)
    for n in (1, 2, 1000, 100_000):
        u = rng.integers(0, ckpt.split.vocab.n_users, n)
        m = rng.integers(0, ckpt.split.vocab.n_movies, n)
        rating, rank = sess.run(None, {contract.INPUT_USER: u, contract.INPUT_MOVIE: m})
        assert rating.shape == rank.shape == (n,) and rating.dtype == np.float32
        with torch.no_grad():
            want_rating, want_rank = ckpt.model.predict_with_rank(
                torch.from_numpy(u), torch.from_numpy(m)
            )
        np.testing.assert_allclose(rating, want_rating.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(rank, want_rank.numpy(), atol=1e-5, rtol=0)


def test_metadata_present_and_correct(exported, trained_artifacts):
    opset, out, result = exported
    meta = {p.key: p.value for p in onnx.load(str(out / contract.MODEL_FILE)).metadata_props}
    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    mapping_bytes = (out / contract.MAPPING_FILE).read_bytes()
    assert meta[contract.META_MAPPING_SHA256] == hashlib.sha256(mapping_bytes).hexdigest()
    assert meta[contract.META_OPSET] == str(opset)
    assert meta[contract.META_FORMAT_VERSION] == str(contract.FORMAT_VERSION)
    assert meta[contract.META_DATA_FINGERPRINT] == ckpt.data_fingerprint
    assert float(meta[contract.META_RATING_MIN]) == 1.0
    assert float(meta[contract.META_RATING_MAX]) == 5.0
    metrics = json.loads(meta[contract.META_METRICS])
    assert metrics["test"]["rmse"] == pytest.approx(ckpt.metrics["test"]["rmse"])
    assert json.loads(meta[contract.META_ARCH])["arch"] == "hybrid"
    assert json.loads(meta[contract.META_HYPERPARAMETERS])["seed"] == 42
    assert meta[contract.META_PACKAGE_VERSION]
    assert meta[contract.META_CREATED_AT].endswith("+00:00")


def test_mapping_contents(exported, trained_artifacts):
    _, out, _ = exported
    mapping = json.loads((out / contract.MAPPING_FILE).read_text())
    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    users = mapping[contract.MAPPING_USER_INDEX]
    assert [int(k) for k in users] == ckpt.split.vocab.user_ids.tolist()
    assert list(users.values()) == list(range(ckpt.split.vocab.n_users))
    fallback = mapping[contract.MAPPING_FALLBACK]
    # the fallback is of the ratings the model was trained on (train + validation here)
    assert ckpt.trained_on == ("train", "val")
    trained = np.concatenate([ckpt.split.train.rating, ckpt.split.val.rating])
    assert fallback[contract.FALLBACK_GLOBAL_MEAN] == pytest.approx(trained.mean())
    assert mapping[contract.MAPPING_ID_TYPES] == {"user": "int", "movie": "int"}
    assert mapping[contract.MAPPING_COLUMNS] == {"user": "user_id", "movie": "movie_id"}
    assert set(fallback[contract.FALLBACK_MOVIE_MEAN]) == set(mapping[contract.MAPPING_MOVIE_INDEX])
    assert mapping[contract.MAPPING_RATING_SCALE] == {"min": 1.0, "max": 5.0}
    assert len(mapping[contract.MAPPING_TITLES]) == ckpt.split.vocab.n_movies


def test_parity_report_and_scorer_agree(exported, trained_artifacts):
    _, out, result = exported
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-5
    assert result.parity.onnx_test_rmse == pytest.approx(result.parity.train_test_rmse, abs=1e-5)
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["parity"]["passed"] is True
    names = [c["name"] for c in report["parity"]["checks"]]
    assert names[:2] == ["test split (rating)", "test split (rank_score)"]
    assert "batch of 1 (rating)" in names
    arts = load_artifacts(out / contract.MODEL_FILE, out / contract.MAPPING_FILE)
    assert arts.rating_scale == (1.0, 5.0)


def test_parity_checks_a_bounded_seeded_sample_of_a_large_test_split(exported, trained_artifacts):
    _, out, result = exported
    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    n_test = len(ckpt.split.test)
    assert (result.parity.test_pairs_checked, result.parity.test_pairs) == (n_test, n_test)
    rows = export_parity.test_sample(n_test, 50, seed=0)
    assert rows.size == 50 and (np.diff(rows) > 0).all() and rows[-1] < n_test
    assert np.array_equal(rows, export_parity.test_sample(n_test, 50, seed=0))
    arts = load_artifacts(out / contract.MODEL_FILE, out / contract.MAPPING_FILE)
    report = export_parity.check_parity(ckpt, arts, 1e-4, 100, seed=0, n_test=50)
    assert report.passed and (report.test_pairs_checked, report.test_pairs) == (50, n_test)
    assert report.checks[0].name == "test split, sample of 50 (rating)"
    assert report.checks[0].pairs == 50
    test = ckpt.split.test
    with torch.no_grad():
        pred = ckpt.model.predict(
            torch.from_numpy(test.user_idx[rows]), torch.from_numpy(test.movie_idx[rows])
        ).numpy()
    want = float(np.sqrt(np.mean((pred - test.rating[rows]) ** 2)))
    assert report.onnx_test_rmse == pytest.approx(want, abs=1e-5)


def test_unsupported_opsets_are_refused(trained_artifacts, tmp_path):
    for opset in (16, max_supported_opset() + 1):
        with pytest.raises(UsageError, match=f"--opset {opset} is not supported"):
            run_export(ExportConfig(artifacts=trained_artifacts, output=tmp_path, opset=opset))
    assert not list(tmp_path.iterdir())


def test_missing_checkpoint(tmp_path, capsys):
    assert run_command(cli, ["--artifacts", str(tmp_path), "-q"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "rec-train" in err and "Traceback" not in err


def test_incompatible_checkpoint(trained_artifacts, tmp_path):
    payload = torch.load(trained_artifacts / contract.CHECKPOINT_FILE, weights_only=True)
    payload["format_version"] = 999
    torch.save(payload, tmp_path / contract.CHECKPOINT_FILE)
    with pytest.raises(ArtifactError, match="format 999"):
        run_export(ExportConfig(artifacts=tmp_path))
    (tmp_path / contract.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="not a readable movierec checkpoint"):
        run_export(ExportConfig(artifacts=tmp_path))


def test_unwritable_output_folder(trained_artifacts, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    code = run_command(
        cli, ["--artifacts", str(trained_artifacts), "--output", str(blocker / "sub"), "-q"]
    )
    assert code == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_failed_parity_publishes_nothing(trained_artifacts, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / contract.MODEL_FILE).write_bytes(b"previous model")
    real = export_parity.torch_predict
    monkeypatch.setattr(
        export_parity,
        "torch_predict",
        lambda *a: tuple(x + np.float32(0.01) for x in real(*a)),
    )
    with pytest.raises(ParityError, match="differs from PyTorch by up to 0.01"):
        run_export(ExportConfig(artifacts=trained_artifacts, output=out))
    assert (out / contract.MODEL_FILE).read_bytes() == b"previous model"
    assert sorted(p.name for p in out.iterdir()) == [contract.MODEL_FILE]


def test_cli_exports_and_scorer_accepts(trained_artifacts, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(trained_artifacts, art)
    assert run_command(cli, ["--artifacts", str(art), "-q"]) == 0
    arts = load_artifacts(art / contract.MODEL_FILE, art / contract.MAPPING_FILE)
    assert arts.metadata[contract.META_OPSET] == "17"


def test_catalog_graph_is_written_beside_the_model(exported):
    opset, out, result = exported
    assert result.catalog_path == out / contract.CATALOG_FILE
    model = onnx.load(str(out / contract.CATALOG_FILE))
    assert {o.domain: o.version for o in model.opset_import}[""] == opset
    onnx.checker.check_model(model, full_check=True)
    assert "TopK" in {n.op_type for n in model.graph.node}
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[contract.META_GRAPH] == "catalog"
    assert meta[contract.META_OPSET] == str(opset)
    model_bytes = (out / contract.MODEL_FILE).read_bytes()
    assert meta[contract.META_MODEL_SHA256] == hashlib.sha256(model_bytes).hexdigest()
    mapping_bytes = (out / contract.MAPPING_FILE).read_bytes()
    assert meta[contract.META_MAPPING_SHA256] == hashlib.sha256(mapping_bytes).hexdigest()
    sess = ort.InferenceSession(
        str(out / contract.CATALOG_FILE), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in sess.get_inputs()] == [
        contract.INPUT_USER,
        contract.INPUT_EXCLUDED,
        contract.INPUT_K,
    ]
    assert [o.name for o in sess.get_outputs()] == [
        contract.OUTPUT_TOP_MOVIE,
        contract.OUTPUT_TOP_BOUND,
    ]
    catalog = json.loads(meta[contract.META_CATALOG])
    assert catalog["format"] == contract.CATALOG_FORMAT and catalog["movies"] > 0


def test_catalog_graph_bounds_pytorch_rank_scores(exported, trained_artifacts):
    _, out, result = exported
    names = [c.name for c in result.parity.checks if c.name.startswith("catalog")]
    assert len(names) == 3 and names[-1].endswith("(table == pairs path)")
    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    n_users, n_movies = ckpt.split.vocab.n_users, ckpt.split.vocab.n_movies
    sess = ort.InferenceSession(
        str(out / contract.CATALOG_FILE), providers=["CPUExecutionProvider"]
    )
    users = np.arange(n_users, dtype=np.int64)
    exclude = np.random.default_rng(1).random((n_users, n_movies)) < 0.3
    k = 7
    rows, bounds = sess.run(
        None,
        {
            contract.INPUT_USER: users,
            contract.INPUT_EXCLUDED: np.flatnonzero(exclude.reshape(-1)),
            contract.INPUT_K: np.array(k, dtype=np.int64),
        },
    )
    assert rows.shape == bounds.shape == (n_users, k)
    assert not np.take_along_axis(exclude, rows, axis=1).any()
    assert (np.diff(bounds, axis=1) <= 0).all()
    with torch.no_grad():
        _, all_rank = ckpt.model.predict_with_rank(
            torch.arange(n_users).repeat_interleave(n_movies),
            torch.arange(n_movies).repeat(n_users),
        )
    all_rank = np.where(exclude, -np.inf, all_rank.numpy().reshape(n_users, n_movies))
    # the k-th highest bound is at least the k-th best allowed rank score
    kth = np.sort(all_rank, axis=1)[:, -k]
    assert (bounds[:, -1] >= kth - 1e-5).all()
    picked = np.take_along_axis(all_rank, rows, axis=1)
    assert (picked <= bounds + 1e-5).all()


def test_scorer_uses_the_exported_catalog_graph(exported):
    from movierec.serve_batch._catalog import score_user_block

    _, out, _ = exported
    with_graph = load_artifacts(out / contract.MODEL_FILE, out / contract.MAPPING_FILE)
    without = load_artifacts(
        out / contract.MODEL_FILE, out / contract.MAPPING_FILE, use_catalog=False
    )
    users = with_graph.users.ids
    n_movies = len(with_graph.movies)
    keys = np.unique(
        np.random.default_rng(2).integers(0, users.size * n_movies, users.size * n_movies // 5)
    )
    for k in (1, 10, n_movies):
        got = score_user_block(with_graph, users, keys, k, batch_size=4096)
        want = score_user_block(without, users, keys, k, batch_size=4096)
        cols = [contract.USER_COL, contract.RANK_COL, contract.MOVIE_COL, contract.COLD_START_COL]
        assert got.select(cols).equals(want.select(cols))
        for name in (contract.PREDICTION_COL, contract.SCORE_COL):
            np.testing.assert_allclose(
                got.column(name).to_numpy(), want.column(name).to_numpy(), atol=1e-5
            )
    assert with_graph.catalog is not None and without.catalog is None


def test_failed_catalog_parity_publishes_nothing(trained_artifacts, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = export_parity.Model.recommend

    def reversed_ranks(self, *args, **kwargs):  # wrong tables from the pairs path only
        table = real(self, *args, **kwargs)
        if self.artifacts.catalog is not None:
            return table
        return table.set_column(
            2,
            contract.MOVIE_COL,
            pa.array(table.column(contract.MOVIE_COL).to_numpy()[::-1].copy()),
        )

    monkeypatch.setattr(export_parity.Model, "recommend", reversed_ranks)
    with pytest.raises(ParityError, match=r"catalog top-\d+ of \d+ users \(table == pairs path\)"):
        run_export(ExportConfig(artifacts=trained_artifacts, output=out))
    assert not any(p.name.endswith(".onnx") for p in out.iterdir())
