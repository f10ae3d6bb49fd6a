"""load_artifacts and Artifacts.predict_ids: verification, scores, fallback, policies."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from movierec.serve_batch import Artifacts, Prediction, contract, load_artifacts
from movierec.serve_batch.errors import ArtifactError, DataError, UsageError
from tests.support import RATING_MAX, RATING_MIN, build_fake_artifacts


def copy_artifacts(fake, dst: Path) -> Path:
    shutil.copytree(fake.folder, dst)
    return dst


def test_load_exposes_scale_metadata_and_hash(fake, arts: Artifacts) -> None:
    assert arts.rating_scale == (RATING_MIN, RATING_MAX)
    assert arts.metadata[contract.META_OPSET] == "17"
    assert arts.metadata == fake.metadata
    assert arts.model_sha256 == hashlib.sha256(fake.model_path.read_bytes()).hexdigest()
    assert "users=12" in repr(arts)


def test_predict_known_pairs_match_numpy_reference(fake, arts: Artifacts) -> None:
    users = np.repeat(fake.user_ids, fake.movie_ids.size)
    movies = np.tile(fake.movie_ids, fake.user_ids.size)
    res = arts.predict_ids(users, movies)
    expected, cold = fake.expected(users, movies)
    assert isinstance(res, Prediction)
    assert res.ratings.dtype == np.float32
    np.testing.assert_allclose(res.ratings, expected, atol=1e-5)
    assert not res.cold_start.any() and res.kept.all() and not cold.any()
    assert res.ratings.min() >= RATING_MIN and res.ratings.max() <= RATING_MAX
    # the fake's scores reach both ends of the scale, so clipping is exercised
    assert (res.ratings == RATING_MIN).any() or (res.ratings == RATING_MAX).any()


def test_rank_scores_come_from_the_rank_output(fake_ranked) -> None:
    arts = load_artifacts(fake_ranked.model_path, fake_ranked.mapping_path, threads=1)
    assert arts.has_rank_score
    users = np.r_[np.repeat(fake_ranked.user_ids, 4), [7, 7]]
    movies = np.r_[np.resize(fake_ranked.movie_ids, fake_ranked.user_ids.size * 4), [1, 2]]
    res = arts.predict_ids(users, movies)
    np.testing.assert_allclose(res.ratings, fake_ranked.expected(users, movies)[0], atol=1e-5)
    np.testing.assert_allclose(res.rank_scores, fake_ranked.expected_rank(users, movies), atol=1e-5)
    assert not np.allclose(res.rank_scores[~res.cold_start], res.ratings[~res.cold_start])
    # cold-start rows rank by their fallback rating
    assert (res.rank_scores[res.cold_start] == res.ratings[res.cold_start]).all()
    skipped = arts.predict_ids(users, movies, on_unknown="skip", batch_size=5)
    np.testing.assert_allclose(skipped.rank_scores, res.rank_scores[skipped.kept], atol=1e-6)


def test_without_rank_output_rank_scores_are_the_ratings(arts: Artifacts, fake) -> None:
    assert not arts.has_rank_score
    res = arts.predict_ids(fake.user_ids, fake.movie_ids[: fake.user_ids.size])
    assert res.rank_scores is res.ratings


@pytest.mark.parametrize("batch_size", [1, 7, 64, 65536])
def test_batch_size_does_not_change_scores(fake, arts: Artifacts, batch_size: int) -> None:
    rng = np.random.default_rng(3)
    users = rng.choice(fake.user_ids, 200)
    movies = rng.choice(fake.movie_ids, 200)
    ref = arts.predict_ids(users, movies, batch_size=200).ratings
    got = arts.predict_ids(users, movies, batch_size=batch_size).ratings
    np.testing.assert_allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("n", [1, 5, 1000, 2047])
def test_threads_split_the_rows_without_changing_scores(fake_ranked, threads, n) -> None:
    """Each thread scores one contiguous span of calls; every row is scored exactly once."""
    one = load_artifacts(fake_ranked.model_path, fake_ranked.mapping_path, threads=1)
    many = load_artifacts(fake_ranked.model_path, fake_ranked.mapping_path, threads=threads)
    assert many.parallel_calls == threads
    many.run_rows = one.run_rows = 64  # many calls per span, a short last call
    rng = np.random.default_rng(n)
    users = rng.choice(fake_ranked.user_ids, n)
    movies = rng.choice(fake_ranked.movie_ids, n)
    ref = one.predict_ids(users, movies)
    got = many.predict_ids(users, movies)
    np.testing.assert_array_equal(got.ratings, ref.ratings)
    np.testing.assert_array_equal(got.rank_scores, ref.rank_scores)


def test_the_sessions_first_call_is_a_full_one(fake_ranked) -> None:
    """onnxruntime plans memory for its first shape: a small first call slowed every
    later full call (see ``Artifacts._warm_up``)."""
    arts = load_artifacts(fake_ranked.model_path, fake_ranked.mapping_path, threads=1)
    seen = []
    real = arts._session

    class Recording:
        def run(self, outputs, feed):
            seen.append(len(feed[contract.INPUT_USER]))
            return real.run(outputs, feed)

    arts._session = Recording()
    arts.run_rows = 256
    ref = arts.predict_ids(fake_ranked.user_ids[:3], fake_ranked.movie_ids[:3])
    assert seen == [256, 3]
    arts.predict_ids(fake_ranked.user_ids[:3], fake_ranked.movie_ids[:3])
    assert seen == [256, 3, 3]  # once per Artifacts
    np.testing.assert_array_equal(
        ref.ratings,
        load_artifacts(fake_ranked.model_path, fake_ranked.mapping_path)
        .predict_ids(fake_ranked.user_ids[:3], fake_ranked.movie_ids[:3])
        .ratings,
    )


def test_fallback_follows_the_documented_rule(fake, arts: Artifacts) -> None:
    u_known, m_known = int(fake.user_ids[3]), int(fake.movie_ids[4])
    users = np.array([u_known, 999_999, u_known, 999_999])
    movies = np.array([m_known, m_known, 424_242, 424_242])
    res = arts.predict_ids(users, movies)
    assert res.cold_start.tolist() == [False, True, True, True]
    clip = lambda v: np.float32(np.clip(v, RATING_MIN, RATING_MAX))  # noqa: E731
    assert res.ratings[1] == clip(fake.movie_mean[m_known])  # unknown user: movie mean
    assert res.ratings[2] == clip(fake.user_mean[u_known])  # unknown movie: user mean
    assert res.ratings[3] == clip(fake.global_mean)  # both unknown: global mean
    assert res.unknown_user.tolist() == [False, True, False, True]
    assert res.unknown_movie.tolist() == [False, False, True, True]
    expected, cold = fake.expected(users, movies)
    np.testing.assert_allclose(res.ratings, expected, atol=1e-5)


def test_fallback_means_are_clipped_to_the_scale(fake, arts: Artifacts) -> None:
    # the fake has movie means outside [1, 5] on purpose
    outside = [m for m, v in fake.movie_mean.items() if not RATING_MIN <= v <= RATING_MAX]
    assert outside, "fixture should have out-of-scale movie means"
    res = arts.predict_ids(np.full(len(outside), 1), np.array(outside))
    assert ((res.ratings >= RATING_MIN) & (res.ratings <= RATING_MAX)).all()


def test_skip_drops_unknown_pairs(fake, arts: Artifacts) -> None:
    users = np.array([fake.user_ids[0], 5, fake.user_ids[1]])
    movies = np.array([fake.movie_ids[0], fake.movie_ids[0], fake.movie_ids[1]])
    res = arts.predict_ids(users, movies, on_unknown="skip")
    assert res.kept.tolist() == [True, False, True]
    assert res.ratings.size == 2 and not res.cold_start.any()
    expected, _ = fake.expected(users[res.kept], movies[res.kept])
    np.testing.assert_allclose(res.ratings, expected, atol=1e-5)


def test_error_policy_names_count_and_ids(fake, arts: Artifacts) -> None:
    users = np.array([fake.user_ids[0], 5, 6, 5])
    movies = np.array([fake.movie_ids[0], fake.movie_ids[0], 7, fake.movie_ids[1]])
    with pytest.raises(
        DataError, match=r"3 of 4 pairs .*unknown user ID \(2 distinct, first: 5, 6\)"
    ):
        arts.predict_ids(users, movies, on_unknown="error")


def test_predict_rejects_bad_arguments(arts: Artifacts) -> None:
    with pytest.raises(DataError, match="differ in length"):
        arts.predict_ids(np.array([1, 2]), np.array([1]))
    with pytest.raises(DataError, match="integer IDs"):
        arts.predict_ids(np.array([1.5]), np.array([1]))
    with pytest.raises(UsageError, match="on_unknown must be one of"):
        arts.predict_ids(np.array([1]), np.array([1]), on_unknown="ignore")


def test_empty_input_gives_empty_result(arts: Artifacts) -> None:
    res = arts.predict_ids(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert res.ratings.size == 0 and res.kept.size == 0


def test_edited_mapping_is_refused(fake, tmp_path: Path) -> None:
    folder = copy_artifacts(fake, tmp_path / "a")
    mapping = folder / contract.MAPPING_FILE
    data = mapping.read_bytes()
    mapping.write_bytes(data.replace(b"3.53", b"3.54", 1))
    with pytest.raises(ArtifactError, match="does not match"):
        load_artifacts(folder / contract.MODEL_FILE, mapping)


def test_other_exports_mapping_is_refused(fake, tmp_path: Path) -> None:
    other = build_fake_artifacts(tmp_path / "other", seed=9)
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_artifacts(fake.model_path, other.mapping_path)


def test_model_without_mapping_hash_is_refused(tmp_path: Path) -> None:
    fa = build_fake_artifacts(tmp_path / "a", with_sha=False)
    with pytest.raises(ArtifactError, match="mapping_sha256"):
        load_artifacts(fa.model_path, fa.mapping_path)


def test_model_format_version_mismatch_is_refused(tmp_path: Path) -> None:
    fa = build_fake_artifacts(tmp_path / "a", format_version=contract.FORMAT_VERSION + 1)
    with pytest.raises(ArtifactError, match=r"format version '2'.* reads format version 1"):
        load_artifacts(fa.model_path, fa.mapping_path)


def test_mapping_format_version_mismatch_is_refused(tmp_path: Path) -> None:
    fa = build_fake_artifacts(tmp_path / "a", mapping_format_version=99)
    with pytest.raises(ArtifactError, match=r"id_mapping.json: artifact format version 99"):
        load_artifacts(fa.model_path, fa.mapping_path)


def test_missing_files_are_refused(fake, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="model not found"):
        load_artifacts(tmp_path / "nope.onnx", fake.mapping_path)
    with pytest.raises(ArtifactError, match="ID mapping not found"):
        load_artifacts(fake.model_path, tmp_path / "nope.json")


def test_corrupt_model_is_refused(fake, tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ArtifactError, match="not a loadable ONNX model"):
        load_artifacts(bad, fake.mapping_path)


def test_model_with_wrong_io_names_is_refused(fake, tmp_path: Path) -> None:
    model = onnx.load(str(fake.model_path))
    model.graph.input[0].name = "uid"
    for node in model.graph.node:
        node.input[:] = ["uid" if n == contract.INPUT_USER else n for n in node.input]
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ArtifactError, match="expected an input named 'user_idx'"):
        load_artifacts(path, fake.mapping_path)


def test_model_with_a_fixed_batch_size_is_refused(fake, tmp_path: Path) -> None:
    model = onnx.load(str(fake.model_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    with pytest.raises(
        ArtifactError, match="has shape \\[1\\], expected \\[batch\\] with a dynamic"
    ):
        load_artifacts(path, fake.mapping_path)


def test_bad_graph_opt_is_refused(fake) -> None:
    with pytest.raises(ArtifactError, match="graph_opt must be one of"):
        load_artifacts(fake.model_path, fake.mapping_path, graph_opt="max")


@pytest.mark.parametrize("graph_opt", ["disable", "basic", "extended", "all"])
def test_every_graph_opt_level_scores_the_same(fake, graph_opt: str) -> None:
    arts = load_artifacts(fake.model_path, fake.mapping_path, threads=1, graph_opt=graph_opt)
    users = np.repeat(fake.user_ids, 3)
    movies = np.resize(fake.movie_ids, users.size)
    np.testing.assert_allclose(
        arts.predict_ids(users, movies).ratings, fake.expected(users, movies)[0], atol=1e-5
    )


def test_mapping_with_bad_json_is_refused(fake, tmp_path: Path) -> None:
    folder = copy_artifacts(fake, tmp_path / "a")
    mapping = folder / contract.MAPPING_FILE
    mapping.write_bytes(b"{not json")
    model = onnx.load(str(folder / contract.MODEL_FILE))
    for prop in model.metadata_props:
        if prop.key == contract.META_MAPPING_SHA256:
            prop.value = hashlib.sha256(b"{not json").hexdigest()
    onnx.save(model, str(folder / contract.MODEL_FILE))
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifacts(folder / contract.MODEL_FILE, mapping)


def test_mapping_keys_are_checked(fake, tmp_path: Path) -> None:
    folder = copy_artifacts(fake, tmp_path / "a")
    mapping = json.loads((folder / contract.MAPPING_FILE).read_text())
    mapping[contract.MAPPING_USER_INDEX]["abc"] = 99
    data = json.dumps(mapping).encode()
    (folder / contract.MAPPING_FILE).write_bytes(data)
    model = onnx.load(str(folder / contract.MODEL_FILE))
    for prop in model.metadata_props:
        if prop.key == contract.META_MAPPING_SHA256:
            prop.value = hashlib.sha256(data).hexdigest()
    onnx.save(model, str(folder / contract.MODEL_FILE))
    with pytest.raises(ArtifactError, match="bad 'user_index'"):
        load_artifacts(folder / contract.MODEL_FILE, folder / contract.MAPPING_FILE)
