import numpy as np
import pandas as pd
import pytest
import torch

from movierec.train.features import movie_features, user_features
from movierec.train.model import ModelConfig, RecommenderNet
from movierec.train.split import Vocabulary, split_given_test


def _model(**kw) -> RecommenderNet:
    torch.manual_seed(0)
    config = ModelConfig(n_users=6, n_movies=7, embedding_dim=4, hidden=(5,), factors=3, **kw)
    model = RecommenderNet(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def test_column_layout_per_side():
    cols = ModelConfig(n_users=2, n_movies=2, embedding_dim=4, factors=3, rank_factors=2).columns(
        "movie"
    )
    assert (cols["embedding"], cols["factors"], cols["bias"]) == (
        slice(0, 4),
        slice(4, 7),
        slice(7, 8),
    )
    assert (cols["rank"], cols["rank_bias"], cols["all"]) == (
        slice(8, 10),
        slice(10, 11),
        slice(0, 11),
    )


def test_implicit_terms_sum_the_rated_rows():
    model = _model(implicit_nnz=4)
    u = torch.tensor([0, 0, 1, 3])
    m = torch.tensor([2, 5, 2, 6])
    model.set_implicit(u, m)
    # user 0 rated movies 2 and 5: its implicit term is (y_2 + y_5) / sqrt(2)
    y = model.user_implicit.weight
    expected = model.user_table.weight[0] + (y[2] + y[5]) / np.sqrt(2)
    torch.testing.assert_close(model.user_rows(torch.tensor([0]))[0], expected)
    # movie 2 was rated by users 0 and 1; movie 0 by nobody (no implicit term)
    z = model.movie_implicit.weight
    torch.testing.assert_close(
        model.movie_rows(torch.tensor([2]))[0],
        model.movie_table.weight[2] + (z[0] + z[1]) / np.sqrt(2),
    )
    torch.testing.assert_close(model.movie_rows(torch.tensor([0]))[0], model.movie_table.weight[0])


def test_eval_cache_matches_training_path_and_is_dropped_on_train():
    model = _model(implicit_nnz=3, rank_factors=2)
    model.set_implicit(torch.tensor([0, 1, 2]), torch.tensor([1, 1, 3]))
    u, m = torch.tensor([0, 1, 2, 5]), torch.tensor([1, 2, 3, 6])
    model.train()
    fresh = model(u, m).detach()
    model.eval()
    with torch.no_grad():
        cached = model(u, m)
        torch.testing.assert_close(cached, fresh)
        model.user_table.weight.add_(1.0)  # weights change while cached...
    model.train()  # ...and train() forgets the cache
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(model(u, m), cached)


def test_rank_score_mixes_head_and_rating():
    model = _model(rank_factors=2)
    u, m = torch.tensor([0, 3]), torch.tensor([1, 6])
    with torch.no_grad():
        model.rank_mix.fill_(0.0)
        rating, head = model.predict_with_rank(u, m)
        model.rank_mix.fill_(2.0)
        _, mixed = model.predict_with_rank(u, m)
    torch.testing.assert_close(mixed, head + 2.0 * rating)
    plain = _model()
    with torch.no_grad():
        rating, rank = plain.predict_with_rank(u, m)
    assert torch.equal(rating, rank)  # no ranking head: ranked by the rating


def test_side_features_change_rows_through_the_projection():
    model = _model(n_user_features=2, n_movie_features=3)
    users = torch.zeros(6, 2)
    users[1] = torch.tensor([1.0, 0.0])
    model.set_side_features(users, torch.zeros(7, 3))
    rows = model.user_rows(torch.tensor([0, 1]))
    torch.testing.assert_close(rows[0], model.user_table.weight[0])
    torch.testing.assert_close(rows[1], model.user_table.weight[1] + model.user_side.weight[:, 0])


def test_feature_tables_align_with_the_vocabulary():
    vocab = Vocabulary(np.array([1, 2, 9]), np.array([5, 7]))
    users = pd.DataFrame(
        {
            "user_id": [2, 1],
            "age": [20, 40],
            "gender": ["F", "M"],
            "occupation": ["writer", "writer"],
        }
    )
    uf = user_features(users, vocab)
    assert uf.shape == (3, 4)  # age, F, M, writer
    assert uf[2].tolist() == [0, 0, 0, 0]  # user 9 is absent from the users file
    assert uf[0, 0] > uf[1, 0] and uf[0, 2] == 1 and uf[1, 1] == 1
    movies = pd.DataFrame(
        {
            "movie_id": [7, 5],
            "title": ["a", "b"],
            "year": [1990.0, np.nan],
            "genres": ["Action|Drama", "Drama"],
        }
    )
    mf = movie_features(movies, vocab)
    assert mf.shape == (2, 3)  # Action, Drama, year
    assert mf[0].tolist() == [0, 1, 0] and mf[1, :2].tolist() == [1, 1]
    assert user_features(None, vocab).shape == (3, 0)


def test_split_given_test_keeps_the_given_test_rows():
    base = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 3, 3, 1, 2],
            "movie_id": [1, 2, 1, 3, 2, 3, 3, 2],
            "rating": [1.0, 2, 3, 4, 5, 4, 3, 2],
        }
    )
    test = pd.DataFrame({"user_id": [3, 4], "movie_id": [1, 9], "rating": [5.0, 1.0]})
    split = split_given_test(base, test, seed=0, val_size=0.25)
    assert (len(split.train), len(split.val), len(split.test)) == (6, 2, 2)
    assert split.vocab.user_ids[split.test.user_idx].tolist() == [3, 4]
    assert split.vocab.movie_ids.tolist() == [1, 2, 3, 9]


@pytest.mark.parametrize("bounded", [True, False])
def test_predict_clips_to_the_scale(bounded):
    model = _model(bounded=bounded, rating_min=1.0, rating_max=5.0)
    with torch.no_grad():
        out = model.predict(torch.arange(6), torch.arange(6))
    assert float(out.min()) >= 1.0 and float(out.max()) <= 5.0
