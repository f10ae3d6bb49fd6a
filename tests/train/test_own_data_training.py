"""rec-train on a ratings table of the user's own, and on time-based splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from movierec.serve_batch import contract
from movierec.serve_batch.cli_support import run_command
from movierec.train.checkpoint import load_checkpoint
from movierec.train.cli import cli
from tests.support import TINY_ARGS
from tests.synthetic import LOG_ARGS, LOG_COLUMNS, log_frame, make_ratings, write_items, write_log


@pytest.fixture(scope="module")
def data():
    return make_ratings(n_users=60, n_movies=70, n_ratings=2500, seed=5)


def train(data_path: Path, out: Path, *extra: str) -> dict:
    code = run_command(
        cli, ["--data", str(data_path), "--artifacts", str(out), *TINY_ARGS, "-q", *extra]
    )
    assert code == 0
    return json.loads((out / contract.METRICS_FILE).read_text())


@pytest.fixture(scope="module")
def string_run(data, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("own")
    path = write_log(folder / "log.parquet", log_frame(data))
    items = write_items(folder / "items.parquet", data)
    out = folder / "artifacts"
    return out, train(path, out, *LOG_ARGS, "--items", str(items), "--title-col", "name")


def test_string_ids_train_as_integer_ids_do(data, string_run, tmp_path: Path) -> None:
    """The same ratings with string IDs that sort like the integers: the same model."""
    _, metrics = string_run
    as_int = train(
        write_log(tmp_path / "i.csv", log_frame(data, string_ids=False)), tmp_path / "a", *LOG_ARGS
    )
    assert as_int["data"]["id_types"] == {"user": "int", "movie": "int"}
    assert metrics["data"]["id_types"] == {"user": "string", "movie": "string"}
    for key in ("rmse", "ndcg@10", "cold_start_share"):
        assert metrics["test"][key] == pytest.approx(as_int["test"][key], abs=1e-9)


def test_the_artifacts_keep_the_datas_names_and_ids(data, string_run) -> None:
    out, metrics = string_run
    assert metrics["data"]["columns"] == {**LOG_COLUMNS, "title": "name"}
    assert metrics["split"]["kind"] == "random"
    assert metrics["config"]["columns"]["user"] == "customer_id"
    pairs = pq.read_table(out / contract.TEST_PAIRS_FILE)
    assert pairs.column_names == ["customer_id", "sku", "rating"]
    assert str(pairs.schema.field("sku").type) == "string"
    assert pairs.column("customer_id")[0].as_py().startswith("c-")
    ckpt = load_checkpoint(out / contract.CHECKPOINT_FILE)
    assert ckpt.split.vocab.id_types == {"user": "string", "movie": "string"}
    assert ckpt.columns["movie"] == "sku"
    first = data.movies.iloc[0]
    assert ckpt.titles[f"tt{first['movie_id']:07d}"] == first["title"]


def test_a_time_split_scores_new_users_with_the_fallback(data, tmp_path: Path) -> None:
    metrics = train(
        write_log(tmp_path / "log.parquet", log_frame(data)),
        tmp_path / "a",
        *LOG_ARGS,
        "--split",
        "time",
    )
    split = metrics["split"]
    assert split["kind"] == "time" and (split["train"], split["val"], split["test"]) == (
        1750,
        375,
        375,
    )
    assert metrics["trained_on"] == ["train", "val"]
    assert 0.0 <= metrics["test"]["cold_start_share"] < 1.0
    protocol = metrics["ranking_protocol"]
    assert (
        protocol["users_evaluated"] + protocol["users_unknown_to_model"]
        <= protocol["users_with_relevant"]
    )


def test_user_time_knows_every_user(data, tmp_path: Path) -> None:
    metrics = train(
        write_log(tmp_path / "log.parquet", log_frame(data)),
        tmp_path / "a",
        *LOG_ARGS,
        "--split",
        "user-time",
    )
    assert metrics["split"]["kind"] == "user-time"
    assert metrics["ranking_protocol"]["users_unknown_to_model"] == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--user-col", "user"], "no column 'user' for the users; columns found: customer_id"),
        ([*LOG_ARGS, "--time-col", "when"], "no column 'when' for the times"),
        (["--user-col", "sku", "--movie-col", "sku"], "--user-col and --movie-col are both 'sku'"),
    ],
)
def test_bad_options_exit_2_with_one_line(data, tmp_path: Path, capsys, extra, message) -> None:
    path = write_log(tmp_path / "log.parquet", log_frame(data))
    out = tmp_path / "a"
    code = run_command(cli, ["--data", str(path), "--artifacts", str(out), "-q", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_a_time_split_without_times_is_refused(data, tmp_path: Path, capsys) -> None:
    frame = log_frame(data).drop(columns=LOG_COLUMNS["time"])
    path = write_log(tmp_path / "log.parquet", frame)
    args = ["--user-col", "customer_id", "--movie-col", "sku", "--rating-col", "stars"]
    code = run_command(
        cli,
        ["--data", str(path), "--artifacts", str(tmp_path / "a"), "-q", *args, "--split", "time"],
    )
    assert code == 2
    assert "no column 'timestamp' for the times (a time-based --split needs one)" in (
        capsys.readouterr().err
    )


def test_the_unknown_rows_are_left_out_of_the_export(data, tmp_path: Path) -> None:
    """A time split's new users and movies are not in the exported mapping: rec-score
    gives them the fallback, as the evaluation did (same test RMSE)."""
    from movierec.export import ExportConfig, export
    from movierec.serve_batch import load_model

    out = tmp_path / "a"
    frame = log_frame(data, string_ids=False)
    # a few users and movies arrive in the newest period only
    late = frame.customer_id.isin(frame.customer_id.unique()[:4]) | frame.sku.isin(
        frame.sku.unique()[:3]
    )
    frame.loc[late, "event_time"] = frame.event_time.max() + pd.Timedelta(days=1)
    metrics = train(write_log(tmp_path / "log.csv", frame), out, *LOG_ARGS, "--split", "time")
    exported = export(ExportConfig(artifacts=out))
    assert exported.parity.passed
    ckpt = load_checkpoint(out / contract.CHECKPOINT_FILE)
    known = ckpt.fallback()
    assert not known.known_users.all() and not known.known_movies.all()
    mapping = json.loads((out / contract.MAPPING_FILE).read_text())
    assert len(mapping[contract.MAPPING_USER_INDEX]) == int(known.known_users.sum())
    assert mapping[contract.MAPPING_COLUMNS] == {"user": "customer_id", "movie": "sku"}
    model = load_model(out)
    pairs = pq.read_table(out / contract.TEST_PAIRS_FILE)
    scored = model.predict(pairs, user_col="customer_id", movie_col="sku")
    cold = np.asarray(scored.column(contract.COLD_START_COL).to_pylist())
    assert cold.mean() == pytest.approx(metrics["test"]["cold_start_share"])
    err = scored.column(contract.PREDICTION_COL).to_numpy() - pairs.column("rating").to_numpy()
    assert float(np.sqrt(np.mean(err**2))) == pytest.approx(metrics["test"]["rmse"], abs=1e-4)
