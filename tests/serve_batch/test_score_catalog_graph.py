"""Catalog mode through ``catalog.onnx``: the same tables as scoring every pair."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import movierec.serve_batch._catalog as catalog_mod
from movierec.serve_batch import ScoreConfig, contract, load_artifacts, score_catalog
from movierec.serve_batch._catalog import score_block_by_pairs, score_user_block
from movierec.serve_batch.errors import ArtifactError
from tests.support import (
    assert_same,
    brute_force_catalog,
    build_fake_artifacts,
    build_fake_catalog,
    list_dir,
    run_catalog,
)

#: Columns of floats that may move in the last bit with the batch a pair is scored in.
VALUES = [contract.PREDICTION_COL, contract.SCORE_COL]


def random_exclusions(fake, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.choice(np.r_[fake.user_ids, [4]], n).astype(np.int64),
            "movie_id": rng.choice(np.r_[fake.movie_ids, [5]], n).astype(np.int64),
        }
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data(), st.integers(1, 16), st.sampled_from([1, 15, 40, 1000]), st.integers(0, 3))
def test_catalog_graph_gives_the_pairs_path_tables(
    any_fake_catalog, tmp_path_factory, monkeypatch, data, k: int, batch_size: int, margin: int
) -> None:
    """With exclusions, exact ties (twin movies), unknown users and a margin small enough
    that ties straddle the candidate boundary."""
    fake = any_fake_catalog
    monkeypatch.setattr(catalog_mod, "CATALOG_MARGIN", margin)
    tmp_path = tmp_path_factory.mktemp("catg")
    pool = fake.user_ids.tolist() + [424242]
    users = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=12))
    exclude = random_exclusions(fake, data.draw(st.integers(0, 80)), seed=len(users))
    got, manifest = run_catalog(
        fake, tmp_path, users, exclude=exclude, top_k=k, batch_size=batch_size
    )
    assert_same(got, brute_force_catalog(fake, users, exclude, k))
    assert manifest["catalog_graph"] == str(fake.folder / contract.CATALOG_FILE)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(0, 13), min_size=1, max_size=10, unique=True),
    st.integers(1, 15),
    st.integers(0, 60),
    st.integers(0, 2),
)
def test_score_user_block_matches_the_pairs_graph(
    fake_ranked_catalog, monkeypatch, picks, k: int, n_excluded: int, margin: int
) -> None:
    fake = fake_ranked_catalog
    monkeypatch.setattr(catalog_mod, "CATALOG_MARGIN", margin)
    arts = load_artifacts(fake.model_path, fake.mapping_path, threads=1)
    ids = np.r_[fake.user_ids, [9_999_999]]  # the last one is unknown
    block = np.sort(ids[np.array(picks) % ids.size])
    rng = np.random.default_rng(n_excluded)
    keys = np.unique(rng.integers(0, block.size * fake.movie_ids.size, n_excluded))
    got = score_user_block(arts, block, keys, k, batch_size=7)
    want = score_block_by_pairs(arts, block, keys, k, batch_size=7)
    names = [contract.USER_COL, contract.RANK_COL, contract.MOVIE_COL, contract.COLD_START_COL]
    assert got.select(names).equals(want.select(names))
    for name in (contract.PREDICTION_COL, contract.SCORE_COL):
        np.testing.assert_allclose(
            got.column(name).to_numpy(), want.column(name).to_numpy(), atol=1e-5
        )
    assert arts.catalog is not None


def test_ties_rank_by_movie_id_not_by_embedding_row(fake_ranked_catalog) -> None:
    """Twin movies (rows 0-2) score the same; rows are shuffled against IDs, so the
    graph's lower-row-first TopK order differs from the table's lower-ID-first order."""
    fake = fake_ranked_catalog
    arts = load_artifacts(fake.model_path, fake.mapping_path, threads=1)
    twins = fake.movie_ids[np.argsort(fake.movie_rows)[:3]]  # IDs of rows 0, 1, 2
    for user in fake.user_ids:
        table = score_user_block(arts, np.array([user]), None, len(fake.movie_ids), 1000)
        order = [m for m in table.column(contract.MOVIE_COL).to_pylist() if m in twins]
        assert order == sorted(twins.tolist())


def test_onnxruntime_topk_puts_the_lower_index_first_on_ties() -> None:
    """The ONNX rule the catalog graph documents (the scorer re-sorts by movie ID anyway)."""
    graph = helper.make_graph(
        [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)],
        "topk",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, None]),
            helper.make_tensor_value_info("i", TensorProto.INT64, [1, None]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([[1.0, 3.0, 2.0, 3.0, -np.inf, 3.0, 2.0, -np.inf]], dtype=np.float32)
    _, idx = sess.run(None, {"x": x, "k": np.array([8])})
    assert idx.tolist() == [[1, 3, 5, 2, 6, 0, 4, 7]]


def test_a_graph_that_drifts_within_tolerance_still_gives_exact_tables(
    tmp_path: Path, monkeypatch
) -> None:
    fake = build_fake_artifacts(tmp_path / "drift", seed=7, rank_head=True, n_movies=40)
    offset = np.random.default_rng(3).uniform(-4e-4, 4e-4, 40)
    build_fake_catalog(fake, score_offset=offset)
    monkeypatch.setattr(catalog_mod, "CATALOG_MARGIN", 2)
    arts = load_artifacts(fake.model_path, fake.mapping_path, threads=1)
    for k in (1, 5, 20):
        got = score_user_block(arts, fake.user_ids, None, k, batch_size=64)
        want = score_block_by_pairs(arts, fake.user_ids, None, k, batch_size=64)
        assert got.drop_columns(VALUES).equals(want.drop_columns(VALUES))


def test_without_a_catalog_graph_every_pair_is_scored(fake_catalog, tmp_path: Path) -> None:
    arts = load_artifacts(fake_catalog.model_path, fake_catalog.mapping_path, use_catalog=False)
    assert arts.catalog is None and arts.catalog_path is None
    users = fake_catalog.user_ids[:3]
    table = score_user_block(arts, users, None, 4, batch_size=100)
    with_graph = load_artifacts(fake_catalog.model_path, fake_catalog.mapping_path)
    names = [contract.USER_COL, contract.RANK_COL, contract.MOVIE_COL]
    assert table.select(names).equals(
        score_user_block(with_graph, users, None, 4, batch_size=100).select(names)
    )
    with pytest.raises(ArtifactError, match="catalog graph not found"):
        load_artifacts(
            fake_catalog.model_path, fake_catalog.mapping_path, catalog_path=tmp_path / "x.onnx"
        )


def test_older_exports_without_catalog_onnx_still_score_catalogs(fake, tmp_path: Path) -> None:
    assert not (fake.folder / contract.CATALOG_FILE).exists()
    got, manifest = run_catalog(fake, tmp_path, fake.user_ids[:2].tolist(), top_k=3)
    assert_same(got, brute_force_catalog(fake, fake.user_ids[:2], None, 3))
    assert manifest["catalog_graph"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(model_sha256="0" * 64), r"records model SHA-256 000000000000\.\.\..*another export"),
        (dict(mapping_sha256="f" * 64), r"records ID mapping SHA-256 ffffffffffff"),
        (dict(n_movies=16), "scores 16 movies but the ID mapping has 15"),
    ],
)
def test_a_catalog_graph_of_another_export_is_refused(
    fake, tmp_path: Path, change: dict, message: str
) -> None:
    folder = tmp_path / "art"
    shutil.copytree(fake.folder, folder)
    moved = build_fake_artifacts(folder)  # same seed: same files, now in ``folder``
    build_fake_catalog(moved, **change)
    users = tmp_path / "users.csv"
    users.write_text("user_id\n" + "\n".join(map(str, fake.user_ids[:2])) + "\n")
    out = tmp_path / "top.parquet"
    with pytest.raises(ArtifactError, match=message):
        score_catalog(ScoreConfig.build(input=users, output=out, artifacts=folder, all_movies=True))
    assert list_dir(tmp_path) == ["art", "users.csv"]


def test_catalog_graph_io_is_checked(fake, tmp_path: Path) -> None:
    folder = tmp_path / "art"
    moved = build_fake_artifacts(folder)
    path = build_fake_catalog(moved)
    model = onnx.load(str(path))
    model.graph.output[0].name = "rows"
    model.graph.node[-1].output[1] = "rows"
    onnx.save(model, str(path))
    arts = load_artifacts(moved.model_path, moved.mapping_path)
    with pytest.raises(ArtifactError, match="expected inputs and outputs"):
        score_user_block(arts, moved.user_ids[:1], None, 3, 100)


def test_catalog_blocks_stay_in_block_order(fake_ranked_catalog) -> None:
    """Unknown and known users interleaved: rows come back in the block's order."""
    fake = fake_ranked_catalog
    arts = load_artifacts(fake.model_path, fake.mapping_path)
    block = np.array([fake.user_ids[0], 1_000_001, fake.user_ids[3], 1_000_005])
    table = score_user_block(arts, block, None, 2, 50)
    assert table.column(contract.USER_COL).to_pylist() == [
        u for u in block.tolist() for _ in range(2)
    ]
    assert (
        table.column(contract.COLD_START_COL).to_pylist()
        == [False] * 2 + [True] * 2 + [False] * 2 + [True] * 2
    )
    assert isinstance(table, pa.Table)


def test_users_with_fewer_allowed_movies_than_k(fake_ranked_catalog) -> None:
    """One user keeps two movies, one keeps none, the others lose a few: every table
    as the pairs path's (short lists, no row for the user with nothing left)."""
    fake = fake_ranked_catalog
    arts = load_artifacts(fake.model_path, fake.mapping_path, threads=1)
    n = fake.movie_ids.size
    block = fake.user_ids[:6]
    keys = [1 * n + m for m in range(n) if m not in (3, 11)]  # user 1: movies 3 and 11
    keys += [3 * n + m for m in range(n)]  # user 3: nothing
    keys += [5 * n + m for m in (0, 1, 2, 7)]  # user 5: the twins and one more
    keys = np.array(sorted(keys), dtype=np.int64)
    for k in (1, 5, n):
        got = score_user_block(arts, block, keys, k, batch_size=8)
        want = score_block_by_pairs(arts, block, keys, k, batch_size=8)
        assert got.drop_columns(VALUES).equals(want.drop_columns(VALUES))
        users = got.column(contract.USER_COL).to_numpy()
        assert (users == block[1]).sum() == min(k, 2) and not (users == block[3]).any()


@pytest.mark.parametrize("ranked", [False, True])
def test_top_bounds_match_numpy_across_calls(tmp_path: Path, ranked) -> None:
    """Twelve users in calls of four (call_pairs 64, 15 movies): each call gets its own
    users' exclusions, renumbered; bounds as numpy computes them, highest first."""
    moved = build_fake_artifacts(tmp_path / "art", seed=5, rank_head=ranked)
    build_fake_catalog(moved)
    arts = load_artifacts(moved.model_path, moved.mapping_path, threads=2)
    graph = arts.catalog
    assert graph.usable and graph.call_pairs == 64
    rows = np.arange(moved.P.shape[0], dtype=np.int64)
    n = moved.Q.shape[0]
    rating = np.clip(moved.bias + moved.bu[:, None] + moved.bm + moved.P @ moved.Q.T, 1, 5)
    want = rating
    if ranked:
        R, S, c, mix = moved.rank_head
        want = R @ S.T + c + mix * 5.0
    keys = np.unique(np.random.default_rng(4).integers(0, rows.size * n, 70))
    want = want.copy()
    want.reshape(-1)[keys] = -np.inf
    for k in (1, 6, n):
        got_rows, got_bounds = graph.top_bounds(rows, keys, k)
        np.testing.assert_allclose(got_bounds, -np.sort(-want, axis=1)[:, :k], atol=1e-5)
        np.testing.assert_allclose(np.take_along_axis(want, got_rows, 1), got_bounds, atol=1e-5)


def test_a_bound_below_the_scores_sends_users_to_the_pairs_path(tmp_path: Path, caplog) -> None:
    """A graph whose bounds fall short of the model's scores is caught on the candidates
    it returns: those users are scored through the pairs path, the tables stay exact."""
    fake = build_fake_artifacts(tmp_path / "low", seed=7, rank_head=True, n_movies=40)
    build_fake_catalog(fake, score_offset=np.full(40, -2.0))
    arts = load_artifacts(fake.model_path, fake.mapping_path, threads=1)
    got = score_user_block(arts, fake.user_ids, None, 5, batch_size=64)
    want = score_block_by_pairs(arts, fake.user_ids, None, 5, batch_size=64)
    assert got.drop_columns(VALUES).equals(want.drop_columns(VALUES))
    _, unsure = catalog_mod.top_k_by_catalog(
        arts, arts.catalog, arts.users.lookup(fake.user_ids)[0], None, 5, 64
    )
    assert unsure.size == fake.user_ids.size


def test_an_older_catalog_graph_is_ignored_with_a_warning(fake, tmp_path: Path, caplog) -> None:
    folder = tmp_path / "art"
    shutil.copytree(fake.folder, folder)
    moved = build_fake_artifacts(folder)
    build_fake_catalog(moved, layout=1)
    users = fake.user_ids[:3].tolist()
    with caplog.at_level("WARNING"):
        got, manifest = run_catalog(moved, tmp_path, users, top_k=4)
    assert "catalog graph layout 1, this rec-score reads layout 2" in caplog.text
    assert caplog.text.count("catalog graph layout") == 1
    assert_same(got, brute_force_catalog(moved, users, None, 4))
    assert manifest["catalog_graph"] is None
