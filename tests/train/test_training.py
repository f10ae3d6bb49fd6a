import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from movierec.serve_batch import contract
from movierec.serve_batch.cli_support import run_command
from movierec.serve_batch.errors import UsageError
from movierec.train.checkpoint import load_checkpoint
from movierec.train.cli import cli
from movierec.train.config import TrainConfig
from movierec.train.metrics import rank_top_k, ranking_metrics
from movierec.train.model import ModelConfig, RecommenderNet, seed_config
from movierec.train.pipeline import run_training
from movierec.train.split import Part, Split, Vocabulary
from tests.support import TINY


def test_tiny_training_beats_global_mean(trained_artifacts):
    metrics = json.loads((trained_artifacts / contract.METRICS_FILE).read_text())
    base = metrics["baselines"]["global_mean"]["test"]["rmse"]
    assert metrics["test"]["rmse"] < base - 0.05, (metrics["test"], base)
    for key in ("rmse", "mse", "mae", "precision@10", "recall@10", "ndcg@10"):
        assert key in metrics["test"]
    assert set(metrics["val"]) >= {"rmse", "mse", "mae"}
    assert set(metrics["baselines"]) == {"global_mean", "popularity"}
    assert metrics["epochs_run"] == TINY["epochs"]
    assert metrics["train_seconds"] > 0


def test_artifacts_written(trained_artifacts):
    for name in (
        contract.CHECKPOINT_FILE,
        contract.METRICS_FILE,
        contract.CURVES_FILE,
        contract.TEST_PAIRS_FILE,
        contract.TRAIN_VAL_PAIRS_FILE,
    ):
        assert (trained_artifacts / name).stat().st_size > 0, name
    assert (trained_artifacts / contract.CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(trained_artifacts.glob(".*.tmp-*"))


def test_checkpoint_round_trip(trained_artifacts):
    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    assert ckpt.rating_scale == (1.0, 5.0)
    assert ckpt.data_fingerprint.startswith("ml-100k:")
    assert len(ckpt.split.train) + len(ckpt.split.val) + len(ckpt.split.test) == 4000
    metrics = json.loads((trained_artifacts / contract.METRICS_FILE).read_text())
    # The restored model reproduces the recorded test RMSE: it is the best checkpoint.
    test = ckpt.split.test
    with torch.no_grad():
        pred = ckpt.model.predict(torch.from_numpy(test.user_idx), torch.from_numpy(test.movie_idx))
    rmse = float(np.sqrt(np.mean((pred.numpy() - test.rating) ** 2)))
    assert rmse == pytest.approx(metrics["test"]["rmse"], abs=1e-6)


def test_same_seed_same_metrics(synthetic_ml100k, tmp_path):
    runs = []
    for name in ("a", "b", "c"):
        seed = 5 if name != "c" else 6
        config = TrainConfig.for_arch(
            "hybrid",
            data=synthetic_ml100k,
            artifacts=tmp_path / name,
            seed=seed,
            quiet=True,
            **{**TINY, "epochs": 3},
        )
        runs.append(run_training(config).metrics)
    for key in ("rmse", "mae", "ndcg@10"):
        assert runs[0]["test"][key] == pytest.approx(runs[1]["test"][key], abs=1e-6)
    assert runs[0]["history"] == runs[1]["history"]
    assert runs[0]["test"]["rmse"] != runs[2]["test"]["rmse"]


def test_seed_arch_is_the_notebook_network():
    config = TrainConfig.for_arch("seed")
    assert (config.epochs, config.batch_size, config.lr) == (6, 64, 5e-4)
    model = RecommenderNet(
        ModelConfig(
            n_users=5,
            n_movies=6,
            arch="seed",
            embedding_dim=100,
            hidden=(128, 64),
            factors=0,
            use_bias=False,
            bounded=False,
        )
    )
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(5, 100), (6, 100), (128, 200), (128,), (64, 128), (64,), (1, 64), (1,)]
    # the one definition: the preset, the network rec-train builds, and seed_config agree
    built = seed_config(5, 6, 1.0, 5.0, 3.5)
    assert (built.embedding_dim, built.hidden, built.factors) == (100, (128, 64), 0)
    assert (built.use_bias, built.bounded, built.init_std, built.rank_factors) == (
        False,
        False,
        0.01,
        0,
    )


def test_bounded_output_stays_in_scale():
    model = RecommenderNet(ModelConfig(n_users=3, n_movies=3, rating_min=0.5, rating_max=5.0))
    with torch.no_grad():
        for t in model.parameters():
            t.normal_(0, 10)
        out = model(torch.tensor([0, 1, 2]), torch.tensor([2, 1, 0]))
    assert ((out >= 0.5) & (out <= 5.0)).all()


def test_ranking_metrics_by_hand():
    # 1 user, 4 movies; train has movie 0; test: movie 1 (5 stars), movie 3 (2 stars).
    vocab = Vocabulary(np.array([1]), np.array([10, 11, 12, 13]))
    part = lambda m, r: Part(  # noqa: E731
        np.zeros(len(m), np.int64),
        np.array(m, np.int64),
        np.array(r, np.float32),
    )
    split = Split(vocab, part([0], [4]), part([], []), part([1, 3], [5, 2]))
    scores = np.array([[9.0, 1.0, 3.0, 2.0]])  # movie 0 excluded; ranking 2, 3, 1
    got = ranking_metrics(split, lambda rows: scores, k=2)
    assert got["precision@2"] == 0.0 and got["recall@2"] == 0.0
    got = ranking_metrics(split, lambda rows: scores, k=3)
    assert got["precision@3"] == pytest.approx(1 / 3)
    assert got["recall@3"] == 1.0
    assert got["ndcg@3"] == pytest.approx((1 / np.log2(4)) / 1.0)


def test_rank_top_k_breaks_ties_by_index():
    assert rank_top_k(np.array([[1.0, 2.0, 2.0, 0.0]]), 3).tolist() == [[1, 2, 0]]


def test_bad_config_values_are_refused():
    with pytest.raises(UsageError, match="architecture"):
        TrainConfig.for_arch("transformer")
    # what the seed network fixes is refused when set otherwise, never dropped
    for option, value in (("factors", 8), ("rank_factors", 4), ("rank_weight", 0.5)):
        with pytest.raises(UsageError, match=rf"^{option} {value}: arch seed is the notebook's"):
            TrainConfig.for_arch("seed", **{option: value})
    with pytest.raises(UsageError, match="implicit True: arch seed"):
        TrainConfig.for_arch("seed", implicit=True)
    assert TrainConfig.for_arch("seed", factors=0).factors == 0  # the value it fixes anyway


def test_cli_refusals_name_the_flags(tmp_path, capsys):
    code = run_command(cli, ["--arch", "seed", "--rank-factors", "4", "--artifacts", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("Error: --rank-factors 4: --arch seed is the notebook's")


def test_cli_bad_data_exits_2_without_traceback(tmp_path):
    (tmp_path / "u.data").write_text("1\t2\t3\t881250949\n1\t3\tfive\t881250949\n")
    result = CliRunner().invoke(
        cli,
        ["--data", str(tmp_path), "--artifacts", str(tmp_path / "a")],
        standalone_mode=False,
        catch_exceptions=True,
    )
    assert result.exception is not None
    code = run_command(cli, ["--data", str(tmp_path), "--artifacts", str(tmp_path / "a")])
    assert code == 2


def test_cli_missing_data_folder_exits_2(tmp_path, capsys):
    code = run_command(
        cli, ["--data", str(tmp_path / "nope"), "--artifacts", str(tmp_path / "a"), "-q"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nope" in err


def test_cli_help_documents_every_option():
    out = CliRunner().invoke(cli, ["--help"]).output
    for option in (
        "--data",
        "--artifacts",
        "--arch",
        "--seed",
        "--epochs",
        "--batch-size",
        "--lr",
        "--embedding-dim",
        "--hidden",
        "--factors",
        "--reg",
        "--weight-decay",
        "--patience",
        "--threads",
        "--quiet",
    ):
        assert option in out


def test_cli_end_to_end(synthetic_ml100k, tmp_path):
    out = tmp_path / "art"
    code = run_command(
        cli,
        [
            "--data",
            str(synthetic_ml100k),
            "--artifacts",
            str(out),
            "-q",
            "--epochs",
            "2",
            "--embedding-dim",
            "4",
            "--factors",
            "4",
            "--hidden",
            "8",
        ],
    )
    assert code == 0
    metrics = json.loads((out / contract.METRICS_FILE).read_text())
    assert metrics["config"]["hidden"] == [8] and metrics["epochs_run"] == 2


def test_deterministic_algorithms_are_on_while_training_and_restored_after():
    import torch

    from movierec.train.loop import deterministic_algorithms

    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms():
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_choose_rank_mix_scores_once_and_agrees_with_one_pass_per_mix(trained_artifacts):
    from movierec.train.pipeline import RANK_MIX_GRID, choose_rank_mix, score_users_fn

    ckpt = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    model, split = ckpt.model, ckpt.split
    assert model.config.rank_factors
    per_mix = {}
    for mix in RANK_MIX_GRID:  # the obvious way: set the mix, score and rank every user
        model.rank_mix.fill_(mix)
        per_mix[mix] = ranking_metrics(
            split, score_users_fn(model, split.vocab.n_movies), target="val"
        )["ndcg@10"]
    got = choose_rank_mix(model, split)
    assert got["val_ndcg@10"] == {str(m): pytest.approx(v, abs=1e-12) for m, v in per_mix.items()}
    assert float(model.rank_mix) == got["chosen"]
    assert got["chosen"] == max(per_mix, key=lambda m: (per_mix[m], -m))


def test_matplotlib_housekeeping_stays_out_of_the_log(tmp_path):
    """On first use matplotlib logs "generated new fontManager" at INFO; the commands'
    logging (``setup_logging``) keeps it out, plain INFO logging would not."""
    import subprocess
    import sys

    def first_plot_log(setup: str, config_dir: str) -> str:
        code = f"{setup}\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot\n"
        env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / config_dir)}  # an empty cache
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    plain = "import logging; logging.basicConfig(level=logging.INFO)"
    ours = "from movierec.serve_batch.cli_support import setup_logging; setup_logging(False)"
    assert "generated new fontManager" in first_plot_log(plain, "plain")
    assert "fontManager" not in first_plot_log(ours, "ours")
