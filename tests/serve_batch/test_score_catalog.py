"""Catalog mode (--all-movies): every movie for every user, minus already-rated ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movierec.serve_batch import ScoreConfig, score_catalog
from movierec.serve_batch.errors import DataError
from tests.support import assert_same, brute_force_catalog, list_dir, run_catalog, write_table


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data(), st.integers(1, 6), st.sampled_from([1, 15, 40, 1000]))
def test_catalog_matches_brute_force_with_exclusions(
    any_fake, tmp_path_factory, data, k: int, batch_size: int
) -> None:
    fake = any_fake
    tmp_path = tmp_path_factory.mktemp("cat")
    users = data.draw(st.lists(st.sampled_from(fake.user_ids.tolist()), min_size=1, max_size=8))
    n_ex = data.draw(st.integers(0, 60))
    rng = np.random.default_rng(n_ex)
    exclude = pd.DataFrame(
        {
            "user_id": rng.choice(np.r_[fake.user_ids, [4]], n_ex).astype(np.int64),
            "movie_id": rng.choice(np.r_[fake.movie_ids, [5]], n_ex).astype(np.int64),
        }
    )
    got, manifest = run_catalog(
        fake, tmp_path, users, exclude=exclude, top_k=k, batch_size=batch_size
    )
    assert_same(got, brute_force_catalog(fake, users, exclude, k))
    assert manifest["users"]["distinct"] == len(set(users))
    assert manifest["pairs_scored"] == len(set(users)) * fake.movie_ids.size


def test_catalog_default_k_is_10_and_duplicates_scored_once(fake, tmp_path: Path) -> None:
    users = [fake.user_ids[2], fake.user_ids[0], fake.user_ids[2]]
    got, manifest = run_catalog(fake, tmp_path, users)
    assert len(got) == 20 and got.user_id.is_monotonic_increasing
    assert_same(got, brute_force_catalog(fake, users, None, 10))
    assert manifest["users"] == {
        "rows_read": 3,
        "distinct": 2,
        "unknown": 0,
        "policy": "fallback",
        "first_unknown": [],
        "scored": 2,
    }
    assert (tmp_path / "top.parquet.manifest.json").exists()


def test_all_movies_excluded_gives_no_rows_for_that_user(fake, tmp_path: Path) -> None:
    u = int(fake.user_ids[0])
    exclude = pd.DataFrame({"user_id": [u] * fake.movie_ids.size, "movie_id": fake.movie_ids})
    got, manifest = run_catalog(fake, tmp_path, [u, fake.user_ids[1]], exclude=exclude, top_k=3)
    assert set(got.user_id) == {int(fake.user_ids[1])}
    assert manifest["exclude"]["pairs_excluded"] == fake.movie_ids.size


def test_unknown_user_fallback_ranks_by_movie_mean(any_fake, tmp_path: Path) -> None:
    fake = any_fake
    got, manifest = run_catalog(fake, tmp_path, [424242, fake.user_ids[0]], top_k=4)
    cold = got[got.user_id == 424242]
    assert cold.cold_start.all() and len(cold) == 4
    means = sorted(fake.movie_mean.items(), key=lambda kv: (-min(max(kv[1], 1), 5), kv[0]))
    assert cold.movie_id.tolist() == [m for m, _ in means[:4]]
    assert not got[got.user_id != 424242].cold_start.any()
    assert manifest["users"]["unknown"] == 1


def test_unknown_user_skip_and_error(fake, tmp_path: Path) -> None:
    got, manifest = run_catalog(fake, tmp_path, [424242, fake.user_ids[0]], on_unknown="skip")
    assert set(got.user_id) == {int(fake.user_ids[0])}
    assert manifest["users"]["scored"] == 1
    with pytest.raises(DataError, match=r"1 of 2 distinct users .*first: 424242.*row 0"):
        run_catalog(fake, tmp_path, [424242, fake.user_ids[0]], on_unknown="error")


def test_catalog_errors_leave_no_output(fake, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user_id\n10\nfoo\n")
    out = tmp_path / "top.parquet"
    with pytest.raises(DataError, match=r"users\.csv: column 'user_id' row 1 .*got 'foo'"):
        score_catalog(
            ScoreConfig.build(input=users, output=out, artifacts=fake.folder, all_movies=True)
        )
    assert list_dir(tmp_path) == ["users.csv"]
    users.write_text("uid\n10\n")
    with pytest.raises(DataError, match="no column 'user_id'; columns found: uid"):
        score_catalog(
            ScoreConfig.build(input=users, output=out, artifacts=fake.folder, all_movies=True)
        )
    rated = write_table(tmp_path / "rated.csv", {"user_id": [10]})
    users.write_text("user_id\n10\n")
    with pytest.raises(DataError, match=r"rated\.csv: no column 'movie_id'"):
        score_catalog(
            ScoreConfig.build(
                input=users, output=out, artifacts=fake.folder, all_movies=True, exclude=rated
            )
        )
    assert list_dir(tmp_path) == ["rated.csv", "users.csv"]
