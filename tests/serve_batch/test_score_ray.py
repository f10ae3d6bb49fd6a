"""``--engine ray``: the same outputs as the local engine, on a local 2-CPU Ray instance.

One Ray instance serves the whole module (starting one takes seconds); every Ray test
compares against the local engine on the same input, so "identical" means bit for bit
(Parquet tables compared with ``Table.equals``). Skipped only where Ray is not
installed; the missing-extra message is tested without Ray.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.serve_batch import ScoreConfig, contract, score, score_catalog, score_file
from tests.support import list_dir, write_table

# Ray Data sets some of its own deprecated options internally; not this project's concern
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance with 2 CPUs for every test of this module, shut down after."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    yield ray
    ray.shutdown()


def pairs_table(fake, n: int, seed: int, unknown: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = np.r_[fake.user_ids, [1, 2, 99999]] if unknown else fake.user_ids
    movies = np.r_[fake.movie_ids, [3, 88888]] if unknown else fake.movie_ids
    return pa.table(
        {
            "user_id": rng.choice(users, n),
            "movie_id": rng.choice(movies, n),
            "rating": rng.integers(1, 6, n).astype(np.float32),
            "note": [f"row-{i}" for i in range(n)],
        }
    )


def read_parts(folder: Path) -> pa.Table:
    """A folder output in part-file name order (= input order)."""
    parts = sorted(folder.glob("part-*.parquet"))
    assert parts and (folder / "_SUCCESS").exists()
    return pa.concat_tables([pq.read_table(p) for p in parts])


def assert_manifests_match(local: dict, ray: dict) -> None:
    assert set(local) | {"engine"} == set(ray)
    for key in ("rows_read", "rows_written", "unknown", "users", "pairs_scored", "exclude"):
        assert local.get(key) == ray.get(key), key
    assert local["model"]["sha256"] == ray["model"]["sha256"]
    job = set(local["config"]["job"]) - {"input", "output"}
    assert {k: local["config"]["job"][k] for k in job} == {k: ray["config"]["job"][k] for k in job}
    assert local["config"]["runtime"] == ray["config"]["runtime"]
    assert (local["config"]["engine"], ray["config"]["engine"]) == ("local", "ray")
    assert local["engine"] == {"name": "local"}
    assert ray["engine"]["name"] == "ray" and ray["engine"]["actors"] >= 1


def test_pairs_with_top_k_match_local_engine_bit_for_bit(
    ray_local, fake_ranked, tmp_path: Path
) -> None:
    """Fallback for unknown IDs, a rank_score head with exact ties, one file read as
    4 row groups by 4 read tasks (so 2 actors), each in blocks of 53 rows."""
    inp = tmp_path / "in.parquet"
    pq.write_table(pairs_table(fake_ranked, 600, seed=1), inp, row_group_size=150)
    kw = dict(artifacts=fake_ranked.folder, quiet=True, batch_size=53, top_k=4, titles=True)
    local = score_file(ScoreConfig.build(input=inp, output=tmp_path / "local.parquet", **kw))
    ray = score_file_ray(inp, tmp_path / "ray.parquet", rows_per_task=100, **kw)
    assert pq.read_table(tmp_path / "ray.parquet").equals(pq.read_table(tmp_path / "local.parquet"))
    assert pq.read_table(tmp_path / "ray.topk.parquet").equals(
        pq.read_table(tmp_path / "local.topk.parquet")
    )
    assert_manifests_match(local, ray)
    assert ray["metrics"]["rows"] == local["metrics"]["rows"]
    assert ray["metrics"]["rmse"] == pytest.approx(local["metrics"]["rmse"], rel=1e-12)
    assert ray["top_k"]["rows"] == local["top_k"]["rows"]
    engine = ray["engine"]
    assert engine["read_tasks"] == 4 and engine["actors"] == 2
    assert ray["output_layout"] == "file"
    on_disk = json.loads((tmp_path / "ray.parquet.manifest.json").read_text())
    assert on_disk["engine"]["threads_per_actor"] == 1


def test_folder_input_splitting_users_across_files_matches_local(
    ray_local, fake_ranked, tmp_path: Path
) -> None:
    """Three Parquet files (one user's pairs in all of them) into a folder OUTPUT, with
    --unknown skip: rows in input order, the top-k merged exactly across blocks."""
    table = pairs_table(fake_ranked, 500, seed=2)
    u = int(fake_ranked.user_ids[3])
    users = table.column("user_id").to_numpy().copy()
    users[[5, 240, 499]] = u  # this user appears in every file and in several blocks
    table = table.set_column(0, "user_id", pa.array(users))
    folder = tmp_path / "pairs"
    (folder / "day=2").mkdir(parents=True)
    pq.write_table(table.slice(0, 200), folder / "a.parquet")
    pq.write_table(table.slice(200, 150), folder / "day=2" / "b.parquet")
    pq.write_table(table.slice(350), folder / "day=2" / "c.parquet")
    (folder / "_ignored.parquet").write_bytes(b"not parquet")  # hidden from the reader
    single = write_table(tmp_path / "all.parquet", table)
    kw = dict(artifacts=fake_ranked.folder, quiet=True, batch_size=37, top_k=3, on_unknown="skip")
    local = score_file(ScoreConfig.build(input=single, output=tmp_path / "local.parquet", **kw))
    ray = score_file_ray(folder, tmp_path / "scores", **kw)
    assert read_parts(tmp_path / "scores").equals(pq.read_table(tmp_path / "local.parquet"))
    top = read_parts(tmp_path / "scores.topk")
    assert top.equals(pq.read_table(tmp_path / "local.topk.parquet"))
    assert top.filter(pa.compute.equal(top.column("user_id"), u)).num_rows == 3
    assert_manifests_match(local, ray)
    assert ray["unknown"]["rows_skipped"] > 0
    assert ray["input_files"] == 3 and ray["output_layout"] == "folder"
    assert (tmp_path / "scores.manifest.json").exists()
    assert not [n for n in list_dir(tmp_path) if n.startswith(".")]  # no temp left


def test_catalog_with_exclude_via_cli_matches_local(
    ray_local, run_cli, fake, tmp_path: Path
) -> None:
    """rec-score --engine ray --all-movies --exclude: the same top-k file, row for row,
    for known users, a duplicate and an unknown user (fallback)."""
    rng = np.random.default_rng(3)
    users = write_table(
        tmp_path / "users.parquet",
        {"user_id": np.r_[fake.user_ids, fake.user_ids[:2], [424242]]},
    )
    rated = write_table(
        tmp_path / "rated.csv",
        {"user_id": rng.choice(fake.user_ids, 60), "movie_id": rng.choice(fake.movie_ids, 60)},
    )
    common = [users, "--all-movies", "--exclude", rated, "--top-k", "5", "--batch-size", "40"]
    common += ["--titles"]
    warning = f"{users}: 1 unknown users ranked by fallback movie means"
    code, err = run_cli(common[0], tmp_path / "local.parquet", *common[1:])
    assert code == 0 and err.startswith(warning) and len(err.splitlines()) == 1
    code, err = run_cli(
        common[0], tmp_path / "ray.parquet", *common[1:], "--engine", "ray", "--workers", "2"
    )
    assert code == 0 and err.startswith(warning) and len(err.splitlines()) == 1, err
    local, ray = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("local", "ray"))
    assert ray.equals(local) and ray.num_rows == 5 * (fake.user_ids.size + 1)
    assert ray.column_names[-2:] == ["cold_start", "title"]
    manifests = [
        json.loads((tmp_path / f"{n}.parquet.manifest.json").read_text()) for n in ("local", "ray")
    ]
    assert_manifests_match(*manifests)
    assert manifests[1]["engine"]["blocks"] > 1  # users really were spread over blocks
    assert manifests[1]["config"]["engine"] == "ray"


def test_catalog_graph_tables_match_local_bit_for_bit(
    ray_local, fake_ranked_catalog, tmp_path: Path
) -> None:
    """Through catalog.onnx: blocks of 9 users (batch 140 / at most 15 pairs per user
    through the model) over 2 actors; known users, a duplicate and an unknown one;
    exclusions, heavy for one user."""
    fake = fake_ranked_catalog
    rng = np.random.default_rng(5)
    users = write_table(
        tmp_path / "users.parquet", {"user_id": np.r_[fake.user_ids[::-1], fake.user_ids[:1], 7]}
    )
    heavy = fake.user_ids[2]
    rated = write_table(
        tmp_path / "rated.parquet",
        {
            "user_id": np.r_[rng.choice(fake.user_ids, 40), [heavy] * 12],
            "movie_id": np.r_[rng.choice(fake.movie_ids, 40), fake.movie_ids[:12]],
        },
    )
    kw = dict(
        artifacts=fake.folder, all_movies=True, exclude=rated, top_k=4, batch_size=140, quiet=True
    )
    local = score_catalog(ScoreConfig.build(input=users, output=tmp_path / "local.parquet", **kw))
    ray = score_file_ray(users, tmp_path / "ray.parquet", actors=2, **kw)
    want, got = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("local", "ray"))
    assert got.equals(want) and want.num_rows > 0
    assert ray["engine"]["blocks"] > 1
    assert (
        local["catalog_graph"] == ray["catalog_graph"] == str(fake.folder / contract.CATALOG_FILE)
    )
    assert json.loads(json.dumps(local["exclude"])) == ray["exclude"]


@pytest.mark.slow  # two Ray jobs: about 7 s
def test_string_ids_give_the_local_tables(ray_local, fake_strings, tmp_path: Path) -> None:
    """A string-ID model under customer_id / sku: pairs with top-k (unknown IDs, 3 read
    tasks) and catalog mode with exclusions, the same files as the local engine."""
    fake = fake_strings
    rng = np.random.default_rng(11)
    users = fake.user_ids.tolist() + ["zz-new", "7 "]
    movies = fake.movie_ids.tolist() + ["tt9999999"]
    n = 450
    table = pa.table(
        {
            "customer_id": pa.array([users[i] for i in rng.integers(0, len(users), n)]),
            "sku": pa.array([movies[i] for i in rng.integers(0, len(movies), n)]),
            "note": [f"row-{i}" for i in range(n)],
        }
    )
    inp = tmp_path / "in.parquet"
    pq.write_table(table, inp, row_group_size=150)
    kw = dict(artifacts=fake.folder, quiet=True, batch_size=41, top_k=3, titles=True)
    local = score_file(ScoreConfig.build(input=inp, output=tmp_path / "local.parquet", **kw))
    ray = score_file_ray(inp, tmp_path / "ray.parquet", rows_per_task=150, **kw)
    for name in ("{}.parquet", "{}.topk.parquet"):
        want = pq.read_table(tmp_path / name.format("local"))
        assert pq.read_table(tmp_path / name.format("ray")).equals(want)
        assert want.schema.field("customer_id").type == pa.string()
    assert_manifests_match(local, ray)
    assert ray["unknown"]["first_unknown_users"] == local["unknown"]["first_unknown_users"]
    assert ray["engine"]["read_tasks"] == 3
    # catalog mode
    who = write_table(tmp_path / "users.parquet", {"customer_id": users[::-1]})
    kw = dict(artifacts=fake.folder, all_movies=True, exclude=inp, top_k=4, quiet=True)
    kw["batch_size"] = 140
    local = score_catalog(ScoreConfig.build(input=who, output=tmp_path / "cl.parquet", **kw))
    ray = score_file_ray(who, tmp_path / "cr.parquet", actors=2, **kw)
    want = pq.read_table(tmp_path / "cl.parquet")
    assert pq.read_table(tmp_path / "cr.parquet").equals(want) and want.num_rows > 0
    assert want.column_names[:3] == ["customer_id", "rank", "sku"]
    assert_manifests_match(local, ray)


def test_catalog_folder_output_and_unknown_error_policy(ray_local, fake, tmp_path: Path) -> None:
    users = write_table(tmp_path / "users.csv", {"user_id": fake.user_ids[::-1]})
    kw = dict(artifacts=fake.folder, quiet=True, batch_size=30, top_k=2, all_movies=True)
    score_catalog(ScoreConfig.build(input=users, output=tmp_path / "local.parquet", **kw))
    score_file_ray(users, tmp_path / "top", actors=1, **kw)
    assert read_parts(tmp_path / "top").equals(pq.read_table(tmp_path / "local.parquet"))
    # --unknown error fails on the driver, before any output exists
    bad = write_table(tmp_path / "bad.csv", {"user_id": [fake.user_ids[0], 77777]})
    from movierec.serve_batch.errors import DataError

    with pytest.raises(DataError, match=r"1 of 2 distinct users .*first: 77777.*row 1"):
        score_file_ray(bad, tmp_path / "none", **kw, on_unknown="error")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("output", ["top.parquet", "top.csv", "top"])
def test_empty_users_give_the_local_empty_table(
    ray_local, fake, tmp_path: Path, output: str
) -> None:
    users = write_table(tmp_path / "users.csv", {"user_id": pa.array([], pa.int64())})
    kw = dict(artifacts=fake.folder, quiet=True, top_k=2, all_movies=True, titles=True)
    from tests.support import read_table

    local_out = tmp_path / ("local" + (output[3:] or ".parquet"))
    score_catalog(ScoreConfig.build(input=users, output=local_out, **kw))
    ray_manifest = score_file_ray(users, tmp_path / output, **kw)
    ray_table = read_parts(tmp_path / output) if output == "top" else read_table(tmp_path / output)
    local_table = read_table(local_out)
    assert ray_table.num_rows == 0 and ray_table.schema.equals(local_table.schema)
    assert ray_manifest["rows_written"] == 0


def test_errors_found_by_workers_exit_2_with_one_line_and_leave_no_output(
    ray_local, run_cli, fake, tmp_path: Path
) -> None:
    folder = tmp_path / "pairs"
    folder.mkdir()
    pq.write_table(pairs_table(fake, 50, seed=4, unknown=False), folder / "a.parquet")
    bad = pairs_table(fake, 50, seed=5, unknown=False)
    movies = [str(m) for m in bad.column("movie_id").to_pylist()]
    movies[17] = "x17"
    pq.write_table(bad.set_column(1, "movie_id", pa.array(movies)), folder / "b.parquet")
    out = tmp_path / "out"
    code, err = run_cli(folder, out, "--engine", "ray", "--workers", "1")
    assert code == 2, err
    assert err.strip() == (
        f"Error: {folder / 'b.parquet'}: column 'movie_id' row 17 (0-based data row): "
        "expected an integer movie ID, got 'x17'"
    )
    # --unknown error: counted over the whole input, then the job fails
    unknown = write_table(tmp_path / "u.parquet", pairs_table(fake, 80, seed=6))
    code, err = run_cli(unknown, out, "--engine", "ray", "--unknown", "error", "--workers", "1")
    assert code == 2 and err.startswith("Error: ") and len(err.strip().splitlines()) == 1
    assert "rows have IDs missing from the ID mapping" in err
    assert list_dir(tmp_path) == ["pairs", "u.parquet"]


def test_ray_options_are_checked_before_any_work(
    ray_local, run_cli, make_pairs, tmp_path: Path
) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(20))
    out = tmp_path / "out.parquet"
    for args, message in [
        (["--workers", "2"], "--workers only applies to --engine ray"),
        (["--engine", "ray", "--threads", "2"], "with the Ray engine use --threads-per-worker"),
        (["--engine", "ray", "--workers", "3"], "--workers 3 x --threads-per-worker 1 = 3 CPUs"),
        (["--engine", "ray", "--threads-per-worker", "4"], "needs 4 CPUs per actor"),
    ]:
        code, err = run_cli(inp, out, *args)
        assert code == 2 and message in err, err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("not ours")
    code, err = run_cli(inp, tmp_path / "mine", "--engine", "ray")
    assert code == 2 and "is not a rec-score output (no _SUCCESS)" in err
    code, err = run_cli(tmp_path / "mine", out)
    assert code == 2 and "INPUT folder holds no .parquet files" in err
    assert sorted(list_dir(tmp_path)) == ["in.parquet", "mine"]


def test_missing_ray_extra_says_how_to_install(
    run_cli, make_pairs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs without Ray too: ``import ray`` fails as it does where the extra is absent."""
    monkeypatch.setitem(sys.modules, "ray", None)
    inp = write_table(tmp_path / "in.parquet", make_pairs(20))
    code, err = run_cli(inp, tmp_path / "out.parquet", "--engine", "ray")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("Error: --engine ray needs Ray, which is not installed")
    assert 'pip install "movierec[ray]"' in err
    assert list_dir(tmp_path) == ["in.parquet"]


def score_file_ray(inp: Path, out: Path, **kw) -> dict:
    """The library's own entry point: the configuration names the engine."""
    return score(ScoreConfig.build(input=inp, output=out, engine="ray", **kw))
