"""score_file (pairs mode): formats, passthrough, policies, manifest, bad input."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.serve_batch import ScoreConfig, score_file
from movierec.serve_batch.errors import DataError, UsageError
from tests.support import list_dir, read_table, write_table

FORMATS = ["parquet", "csv", "csv.gz"]


def config(fake, inp: Path, out: Path, **kw) -> ScoreConfig:
    return ScoreConfig.build(
        input=inp, output=out, artifacts=fake.folder, quiet=True, threads=1, **kw
    )


@pytest.mark.parametrize("in_fmt", FORMATS)
@pytest.mark.parametrize("out_fmt", FORMATS)
def test_round_trip_keeps_rows_order_and_extra_columns(
    fake, make_pairs, tmp_path: Path, in_fmt: str, out_fmt: str
) -> None:
    pairs = make_pairs(500, seed=1, unknown=True)
    extra = {
        "note": [f"row-{i}" for i in range(500)],
        "weight": np.linspace(0, 1, 500),
        "ts": np.arange(500, dtype=np.int64) * 1000,
    }
    inp = write_table(
        tmp_path / f"in.{in_fmt}",
        {"note": extra["note"], **pairs, **{k: extra[k] for k in ("weight", "ts")}},
    )
    out = tmp_path / f"out.{out_fmt}"
    manifest = score_file(config(fake, inp, out, batch_size=64))
    got = read_table(out)
    assert got.column_names == [
        "note",
        "user_id",
        "movie_id",
        "weight",
        "ts",
        "predicted_rating",
        "cold_start",
    ]
    assert got.num_rows == 500
    assert got.column("note").to_pylist() == extra["note"]
    np.testing.assert_allclose(got.column("weight").to_numpy(), extra["weight"])
    assert got.column("ts").to_pylist() == extra["ts"].tolist()
    assert got.column("user_id").to_pylist() == pairs["user_id"].tolist()
    assert got.column("movie_id").to_pylist() == pairs["movie_id"].tolist()
    expected, cold = fake.expected(pairs["user_id"], pairs["movie_id"])
    np.testing.assert_allclose(got.column("predicted_rating").to_numpy(), expected, atol=1e-5)
    assert got.column("cold_start").to_pylist() == cold.tolist()
    assert manifest["rows_read"] == manifest["rows_written"] == 500
    if out_fmt == "parquet":
        assert got.schema.field("predicted_rating").type == pa.float32()
        assert got.schema.field("cold_start").type == pa.bool_()
    if out_fmt == "csv.gz":
        with gzip.open(out) as fh:
            assert fh.read(10)  # really gzip
    assert list_dir(tmp_path) == sorted([inp.name, out.name, out.name + ".manifest.json"])


def test_float_id_columns_from_pandas_are_accepted(fake, make_pairs, tmp_path: Path) -> None:
    pairs = make_pairs(50)
    inp = write_table(
        tmp_path / "in.parquet",
        {"user_id": pairs["user_id"].astype(float), "movie_id": pairs["movie_id"].astype(float)},
    )
    score_file(config(fake, inp, tmp_path / "out.parquet"))
    got = pq.read_table(tmp_path / "out.parquet")
    assert got.schema.field("user_id").type == pa.int64()
    assert got.column("user_id").to_pylist() == pairs["user_id"].tolist()


def test_csv_with_integral_float_text_and_custom_columns(fake, make_pairs, tmp_path: Path) -> None:
    pairs = make_pairs(20)
    inp = tmp_path / "in.csv"
    lines = ["uid,mid"] + [
        f"{u}.0,{m}" for u, m in zip(pairs["user_id"], pairs["movie_id"], strict=True)
    ]
    inp.write_text("\n".join(lines) + "\n")
    score_file(config(fake, inp, tmp_path / "out.csv", user_col="uid", movie_col="mid"))
    got = read_table(tmp_path / "out.csv")
    assert got.column_names == ["uid", "mid", "predicted_rating", "cold_start"]
    np.testing.assert_allclose(
        got.column("predicted_rating").to_numpy(),
        fake.expected(pairs["user_id"], pairs["movie_id"])[0],
        atol=1e-5,
    )


def test_skip_drops_unknown_rows_and_keeps_order(fake, make_pairs, tmp_path: Path) -> None:
    pairs = make_pairs(300, seed=2, unknown=True)
    pairs["pos"] = np.arange(300)
    inp = write_table(tmp_path / "in.parquet", pairs)
    manifest = score_file(
        config(fake, inp, tmp_path / "out.parquet", on_unknown="skip", batch_size=50)
    )
    got = pq.read_table(tmp_path / "out.parquet")
    _, cold = fake.expected(pairs["user_id"], pairs["movie_id"])
    assert got.column("pos").to_pylist() == np.flatnonzero(~cold).tolist()
    assert not any(got.column("cold_start").to_pylist())
    unknown = manifest["unknown"]
    assert manifest["rows_read"] == 300 and manifest["rows_written"] == int((~cold).sum())
    assert unknown["policy"] == "skip" and unknown["rows_skipped"] == int(cold.sum())
    assert unknown["distinct_unknown_users"] == len(set(pairs["user_id"]) & {1, 2, 99999})


def test_error_policy_counts_the_whole_file(fake, make_pairs, tmp_path: Path) -> None:
    pairs = make_pairs(400, seed=3)
    pairs["user_id"][[150, 390]] = 77777  # two different batches
    pairs["movie_id"][391] = 5
    inp = write_table(tmp_path / "in.parquet", pairs)
    out = tmp_path / "out.parquet"
    with pytest.raises(
        DataError,
        match=r"in\.parquet: 3 of 400 rows .*2 rows with an unknown user ID \(1 distinct: 77777\)"
        r"; 1 rows with an unknown movie ID \(1 distinct: 5\); first at row 150",
    ):
        score_file(config(fake, inp, out, on_unknown="error", batch_size=100))
    assert list_dir(tmp_path) == ["in.parquet"]


def test_fallback_manifest_counts(fake, make_pairs, tmp_path: Path) -> None:
    pairs = make_pairs(300, seed=4, unknown=True)
    inp = write_table(tmp_path / "in.parquet", pairs)
    manifest = score_file(config(fake, inp, tmp_path / "out.parquet"))
    _, cold = fake.expected(pairs["user_id"], pairs["movie_id"])
    unknown = manifest["unknown"]
    assert unknown["rows_cold_start"] == unknown["rows_with_unknown_id"] == int(cold.sum())
    unknown_users = ~np.isin(pairs["user_id"], fake.user_ids)
    assert unknown["rows_with_unknown_user"] == int(unknown_users.sum())
    assert unknown["first_unknown_users"][0] == int(pairs["user_id"][unknown_users][0])


def test_manifest_has_metrics_model_and_speed(fake, make_pairs, tmp_path: Path) -> None:
    pairs = make_pairs(257, seed=5, unknown=True)
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 6, 257).astype(float)
    truth[7] = np.nan  # a missing rating is left out of the metrics
    pairs["rating"] = truth
    inp = write_table(tmp_path / "in.parquet", pairs)
    out = tmp_path / "out.parquet"
    returned = score_file(config(fake, inp, out, batch_size=100))
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    assert manifest == json.loads(json.dumps(returned))
    pred, _ = fake.expected(pairs["user_id"], pairs["movie_id"])
    ok = ~np.isnan(truth)
    diff = pred[ok].astype(float) - truth[ok]
    assert manifest["metrics"]["rows"] == 256
    assert math.isclose(manifest["metrics"]["rmse"], float(np.sqrt(np.mean(diff**2))), rel_tol=1e-5)
    assert math.isclose(manifest["metrics"]["mae"], float(np.mean(np.abs(diff))), rel_tol=1e-5)
    assert manifest["model"]["sha256"] == returned["model"]["sha256"]
    assert len(manifest["model"]["sha256"]) == 64
    assert manifest["model"]["opset"] == "17"
    assert manifest["model"]["metadata"]["movierec.graph"] == "plain"
    assert manifest["runtime"]["onnxruntime"]
    assert manifest["elapsed_seconds"] > 0 and manifest["pairs_per_second"] > 0
    assert "rows_per_second" not in manifest
    assert manifest["config"]["runtime"]["batch_size"] == 100
    assert manifest["rows_read"] == manifest["rows_written"] == 257


def test_no_rating_column_means_no_metrics(fake, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(10))
    assert score_file(config(fake, inp, tmp_path / "out.parquet"))["metrics"] is None


def test_previous_output_is_replaced_on_success(fake, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(10))
    out = tmp_path / "out.parquet"
    out.write_bytes(b"old")
    score_file(config(fake, inp, out))
    assert pq.read_table(out).num_rows == 10


# --- bad input ---------------------------------------------------------------------------


def run_bad(fake, tmp_path: Path, inp: Path, **kw) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous")
    try:
        score_file(config(fake, inp, out, **kw))
    finally:
        assert out.read_bytes() == b"previous"
        assert not [n for n in list_dir(tmp_path) if n.startswith(".")], "temp file left"


def test_missing_column_lists_columns_and_options(fake, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.csv", {"user": [10], "movie_id": [1]})
    with pytest.raises(
        DataError, match=r"in\.csv: no column 'user_id'; columns found: user, movie_id .*user_col"
    ):
        run_bad(fake, tmp_path, inp)


def test_null_id_names_column_and_row(fake, tmp_path: Path) -> None:
    inp = write_table(
        tmp_path / "in.parquet",
        pa.table({"user_id": pa.array([10, None, 20], pa.int64()), "movie_id": [1, 2, 3]}),
    )
    with pytest.raises(
        DataError, match=r"in\.parquet: column 'user_id' row 1 \(0-based data row\).*null"
    ):
        run_bad(fake, tmp_path, inp)


def test_text_in_id_column_names_row_across_batches(fake, tmp_path: Path) -> None:
    rows = ["user_id,movie_id"] + [f"{10 + i % 3},{20 + i}" for i in range(5000)]
    rows[1 + 4321] = "10,abc"  # CSV blocks of 16 KiB: this is in the third batch
    inp = tmp_path / "pairs.csv"
    inp.write_text("\n".join(rows) + "\n")
    with pytest.raises(
        DataError,
        match=r"pairs\.csv: column 'movie_id' row 4321 .*expected an integer movie ID, got 'abc'",
    ):
        run_bad(fake, tmp_path, inp, batch_size=16)


def test_empty_csv_field_is_an_error(fake, tmp_path: Path) -> None:
    inp = tmp_path / "pairs.csv"
    inp.write_text("user_id,movie_id\n10,20\n,20\n")
    with pytest.raises(DataError, match="column 'user_id' row 1 .*empty value"):
        run_bad(fake, tmp_path, inp)


def test_non_integral_float_id_is_an_error(fake, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", {"user_id": [10.0, 20.5], "movie_id": [1, 2]})
    with pytest.raises(DataError, match=r"column 'user_id' row 1 .*got 20\.5"):
        run_bad(fake, tmp_path, inp)


def test_zero_byte_file_is_an_error(fake, tmp_path: Path) -> None:
    inp = tmp_path / "in.csv"
    inp.write_bytes(b"")
    with pytest.raises(DataError, match=r"in\.csv: input file is empty \(0 bytes\)"):
        run_bad(fake, tmp_path, inp)


def test_corrupt_parquet_names_the_file(fake, tmp_path: Path) -> None:
    inp = tmp_path / "in.parquet"
    inp.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(DataError, match=r"in\.parquet: not a readable Parquet file"):
        run_bad(fake, tmp_path, inp)


def test_truncated_parquet_names_the_file(fake, make_pairs, tmp_path: Path) -> None:
    good = write_table(tmp_path / "good.parquet", make_pairs(1000))
    inp = tmp_path / "in.parquet"
    data = good.read_bytes()
    inp.write_bytes(data[: len(data) // 2] + data[-200:])
    good.unlink()
    with pytest.raises(DataError, match=r"in\.parquet: "):
        run_bad(fake, tmp_path, inp)


def test_corrupt_gzip_names_the_file(fake, tmp_path: Path) -> None:
    inp = tmp_path / "in.csv.gz"
    inp.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate" * 3)
    with pytest.raises(DataError, match=r"in\.csv\.gz: "):
        run_bad(fake, tmp_path, inp)


def test_missing_input_is_an_error(fake, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="input file not found"):
        score_file(config(fake, tmp_path / "none.parquet", tmp_path / "out.parquet"))


@pytest.mark.parametrize("name", ["in.json", "in.parquet.bak", "in.tsv", "parquet"])
def test_unknown_input_extension_lists_supported(fake, tmp_path: Path, name: str) -> None:
    inp = tmp_path / name
    inp.write_text("x")
    with pytest.raises(
        UsageError, match=r"unsupported input file type; use one of \.csv, \.csv\.gz, \.parquet"
    ):
        score_file(config(fake, inp, tmp_path / "out.parquet"))


def test_unknown_output_extension_is_an_error(fake, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(5))
    with pytest.raises(UsageError, match="unsupported output file type"):
        score_file(config(fake, inp, tmp_path / "out.xlsx"))


def test_missing_output_folders_are_created(fake, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(5))
    out = tmp_path / "new" / "deeper" / "out.parquet"
    score_file(config(fake, inp, out, top_k=2))
    assert pq.read_table(out).num_rows == 5
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "out.parquet",
        "out.parquet.manifest.json",
        "out.topk.parquet",
    ]


def test_output_under_a_file_fails_before_work(fake, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(5))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="is not a folder"):
        score_file(config(fake, inp, tmp_path / "afile" / "out.parquet"))


def test_unwritable_output_folder_fails_before_work(
    fake, make_pairs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    inp = write_table(tmp_path / "in.parquet", make_pairs(5))
    locked = tmp_path / "locked"
    locked.mkdir()
    real_open = builtins.open

    def deny(path, mode="r", *args, **kwargs):  # root ignores chmod, so simulate EACCES
        if str(path).startswith(str(locked)) and "x" in mode:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(UsageError, match=r"cannot write to folder .*locked \(Permission denied\)"):
        score_file(config(fake, inp, locked / "out.parquet"))
    assert list_dir(locked) == []


def test_output_cannot_overwrite_input(fake, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(5))
    with pytest.raises(UsageError, match="cannot be one of the input files"):
        score_file(config(fake, inp, inp))


def test_input_with_prediction_column_is_an_error(fake, make_pairs, tmp_path: Path) -> None:
    pairs = make_pairs(5)
    pairs["predicted_rating"] = np.ones(5)
    inp = write_table(tmp_path / "in.parquet", pairs)
    with pytest.raises(DataError, match="already has a column 'predicted_rating'"):
        run_bad(fake, tmp_path, inp)


def test_bad_artifacts_leave_no_output(fake, make_pairs, tmp_path: Path) -> None:
    from movierec.serve_batch.errors import ArtifactError

    inp = write_table(tmp_path / "in.parquet", make_pairs(5))
    cfg = ScoreConfig.build(input=inp, output=tmp_path / "out.parquet", artifacts=tmp_path / "none")
    with pytest.raises(ArtifactError, match="model not found"):
        score_file(cfg)
    assert list_dir(tmp_path) == ["in.parquet"]


def test_local_engine_reads_and_writes_folders(fake, make_pairs, tmp_path: Path) -> None:
    """A folder of Parquet files in (name order), a folder of parts out: the rows of the
    single-file run, in input order, with _SUCCESS; the top-k table in OUTPUT.topk/."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(make_pairs(300, seed=7, unknown=True))
    folder = tmp_path / "pairs"
    (folder / "b").mkdir(parents=True)
    pq.write_table(table.slice(0, 120), folder / "a.parquet")
    pq.write_table(table.slice(120), folder / "b" / "c.parquet")
    single = write_table(tmp_path / "all.parquet", table)
    one = score_file(config(fake, single, tmp_path / "one.parquet", batch_size=50, top_k=2))
    parts = score_file(config(fake, folder, tmp_path / "scores", batch_size=50, top_k=2))
    names = sorted(p.name for p in (tmp_path / "scores").iterdir())
    assert names[0] == "_SUCCESS" and len(names) == 1 + 7  # a part per block: 3 + 4 of 50
    got = pa.concat_tables(
        pq.read_table(p) for p in sorted((tmp_path / "scores").glob("*.parquet"))
    )
    assert got.equals(pq.read_table(tmp_path / "one.parquet"))
    topk = pq.read_table(tmp_path / "scores.topk" / "part-000000000000.parquet")
    assert topk.equals(pq.read_table(tmp_path / "one.topk.parquet"))
    assert parts["input_files"] == 2 and parts["output_layout"] == "folder"
    assert parts["unknown"] == one["unknown"] and parts["rows_written"] == one["rows_written"]
