"""Top-k: vectorised selection and the streaming merge against a pandas brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.serve_batch import ScoreConfig, load_artifacts, score_file
from movierec.serve_batch._topk import (
    TopKAccumulator,
    order_for_top_k,
    select_block_top_k,
    select_top_k,
)
from tests.support import read_table, write_table


def brute_force(users, movies, ratings, k: int, ranks=None, cold=None) -> pd.DataFrame:
    """Best distinct movies per user: model-scored before cold-start, rank score desc,
    movie ID asc; ranks from 1."""
    df = pd.DataFrame(
        {
            "user_id": users,
            "movie_id": movies,
            "predicted_rating": ratings,
            "rank_score": ratings if ranks is None else ranks,
            "cold": np.zeros(len(users), bool) if cold is None else cold,
        }
    )
    df = df.drop_duplicates(["user_id", "movie_id"], keep="first")
    df = df.sort_values(
        ["user_id", "cold", "rank_score", "movie_id"], ascending=[True, True, False, True]
    )
    df["rank"] = df.groupby("user_id").cumcount() + 1
    df = df[df["rank"] <= k]
    return df[["user_id", "rank", "movie_id", "predicted_rating"]].reset_index(drop=True)


# few users, movies and score values, so ties and repeated pairs are common; a repeated
# pair always has the same score, as in a real run
SCORE_VALUES = [1.0, 2.5, 3.0, 3.25, 4.0, 5.0]
PAIR_LISTS = st.lists(st.tuples(st.integers(1, 6), st.integers(1, 12)), min_size=1, max_size=120)


def draw_arrays(data, pairs):
    """Ratings, rank scores and cold flags, one per distinct pair (as in a real run)."""
    distinct = sorted(set(pairs))
    rating_of = {p: data.draw(st.sampled_from(SCORE_VALUES)) for p in distinct}
    rank_of = {p: data.draw(st.sampled_from(SCORE_VALUES + [-2.0, 7.5])) for p in distinct}
    cold_of = {p: data.draw(st.booleans()) for p in distinct}
    users = np.array([p[0] for p in pairs], dtype=np.int64)
    movies = np.array([p[1] for p in pairs], dtype=np.int64)
    ratings = np.array([rating_of[p] for p in pairs], dtype=np.float32)
    ranks = np.array([rank_of[p] for p in pairs], dtype=np.float32)
    cold = np.array([cold_of[p] for p in pairs], dtype=bool)
    return users, movies, ratings, ranks, cold


@settings(max_examples=100, deadline=None)
@given(PAIR_LISTS, st.integers(1, 5), st.data())
def test_select_top_k_by_rating_matches_brute_force(pairs, k: int, data) -> None:
    users, movies, ratings, _, _ = draw_arrays(data, pairs)
    idx, rank = select_top_k(users, movies, ratings, k)
    got = pd.DataFrame(
        {
            "user_id": users[idx],
            "rank": rank + 1,
            "movie_id": movies[idx],
            "predicted_rating": ratings[idx],
        }
    )
    pd.testing.assert_frame_equal(got, brute_force(users, movies, ratings, k), check_dtype=False)


@settings(max_examples=100, deadline=None)
@given(PAIR_LISTS, st.integers(1, 4), st.integers(1, 17), st.integers(1, 40), st.data())
def test_streaming_merge_matches_brute_force(
    pairs, k: int, chunk: int, merge_rows: int, data
) -> None:
    users, movies, ratings, ranks, cold = draw_arrays(data, pairs)
    acc = TopKAccumulator(k, min_merge_rows=merge_rows)
    for start in range(0, users.size, chunk):
        sl = slice(start, start + chunk)
        acc.add(users[sl], movies[sl], ratings[sl], ranks[sl], cold[sl])
    table = acc.to_table().to_pandas()
    want = brute_force(users, movies, ratings, k, ranks, cold)
    pd.testing.assert_frame_equal(
        table[["user_id", "rank", "movie_id", "predicted_rating"]], want, check_dtype=False
    )


FLOATS = st.floats(-1e6, 1e6, width=32, allow_nan=False) | st.sampled_from([0.0, -0.0, 3.0])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**62), 2**62) | st.integers(0, 5),
            st.integers(-(2**62), 2**62) | st.integers(0, 5),
            FLOATS,
            st.booleans(),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_packed_sort_key_orders_like_lexsort(rows) -> None:
    users = np.array([r[0] for r in rows], dtype=np.int64)
    movies = np.array([r[1] for r in rows], dtype=np.int64)
    scores = np.array([r[2] for r in rows], dtype=np.float32)
    cold = np.array([r[3] for r in rows], dtype=bool)
    got = order_for_top_k(users, movies, scores, cold)
    want = np.lexsort((movies, -scores, cold, users))
    for arr in (users, cold, movies, scores):
        assert arr[got].tolist() == arr[want].tolist()


def test_many_distinct_ids_fall_back_to_lexsort() -> None:
    rng = np.random.default_rng(0)
    n = 70_000  # more than 2**16 distinct users and movies: no packed key fits
    users = rng.permutation(n).astype(np.int64) * 1_000_003
    movies = rng.permutation(n).astype(np.int64) * 999_983
    scores = rng.choice(np.float32([1, 2, 3]), n)
    cold = rng.random(n) < 0.1
    got = order_for_top_k(users, movies, scores, cold)
    assert (got == np.lexsort((movies, -scores, cold, users))).all()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 9),
    st.integers(1, 12),
    st.integers(0, 2**32 - 1),
)
def test_block_top_k_is_a_stable_row_wise_sort(n_users, n_movies, k, seed) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.choice([1.0, 2.0, 3.0, -np.inf], (n_users, n_movies)).astype(np.float32)
    cols, valid = select_block_top_k(scores, k)
    for r in range(n_users):
        finite = [c for c in range(n_movies) if np.isfinite(scores[r, c])]
        want = sorted(finite, key=lambda c: (-scores[r, c], c))[:k]
        assert cols[r][valid[r]].tolist() == want


def test_file_top_k_matches_brute_force_and_is_deterministic(
    any_fake, make_pairs, tmp_path: Path
) -> None:
    fake = any_fake
    pairs = make_pairs(3000, seed=11, unknown=True, source=fake)  # twins, fallback: ties
    inp = write_table(tmp_path / "in.parquet", pairs)
    outs = []
    for run in range(2):
        out = tmp_path / f"run{run}" / "out.parquet"
        out.parent.mkdir()
        score_file(
            ScoreConfig.build(
                input=inp,
                output=out,
                artifacts=fake.folder,
                top_k=4,
                batch_size=97 + run * 400,  # different batching, same table
                quiet=True,
            )
        )
        outs.append(out.with_name("out.topk.parquet"))
    assert outs[0].read_bytes() == outs[1].read_bytes()
    got = pq.read_table(outs[0]).to_pandas()
    # order from the scorer's own scores (their values are checked against the numpy
    # reference elsewhere), so float rounding cannot flip a near-tie here
    arts = load_artifacts(fake.model_path, fake.mapping_path)
    pred = arts.predict_ids(pairs["user_id"], pairs["movie_id"])
    np.testing.assert_allclose(
        pred.rank_scores, fake.expected_rank(pairs["user_id"], pairs["movie_id"]), atol=1e-5
    )
    want = brute_force(
        pairs["user_id"], pairs["movie_id"], pred.ratings, 4, pred.rank_scores, pred.cold_start
    )
    pd.testing.assert_frame_equal(
        got[["user_id", "rank", "movie_id", "predicted_rating"]], want, check_dtype=False
    )
    assert list(got.columns) == [
        "user_id",
        "rank",
        "movie_id",
        "predicted_rating",
        "score",
        "cold_start",
    ]
    # score is the rank score each row was ranked by
    keys = zip(pairs["user_id"], pairs["movie_id"], strict=True)
    score_of = dict(zip(keys, pred.rank_scores, strict=True))
    want_score = [score_of[(u, m)] for u, m in zip(got.user_id, got.movie_id, strict=True)]
    np.testing.assert_array_equal(got.score.to_numpy(), np.array(want_score, np.float32))
    unknown_users = set(pairs["user_id"]) - set(fake.user_ids)
    assert got.loc[got.user_id.isin(unknown_users), "cold_start"].all()
    # a known user's unknown movies come after the movies the model scored
    known = got[~got.user_id.isin(unknown_users)]
    assert (known.groupby("user_id").cold_start.apply(lambda c: c.is_monotonic_increasing)).all()


@pytest.mark.parametrize("fmt", ["csv", "csv.gz"])
def test_top_k_path_follows_output_format(fake, make_pairs, tmp_path: Path, fmt: str) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(200, seed=2))
    manifest = score_file(
        ScoreConfig.build(input=inp, output=tmp_path / f"out.{fmt}", artifacts=fake.folder, top_k=2)
    )
    table = read_table(tmp_path / f"out.topk.{fmt}")
    assert table.column_names[:4] == ["user_id", "rank", "movie_id", "predicted_rating"]
    assert manifest["top_k"]["rows"] == table.num_rows
    assert set(table.column("rank").to_pylist()) == {1, 2}


def test_explicit_top_k_output_path(fake, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(50))
    target = tmp_path / "best.csv"
    score_file(
        ScoreConfig.build(
            input=inp,
            output=tmp_path / "out.parquet",
            artifacts=fake.folder,
            top_k=1,
            top_k_output=target,
        )
    )
    assert read_table(target).num_rows == len(set(make_pairs(50)["user_id"]))
