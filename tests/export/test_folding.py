import numpy as np
import pytest
import torch

from movierec.export.folding import FoldedNet, ScoringModule, count_flops_per_pair
from movierec.train.model import ModelConfig, RecommenderNet, seed_config

VARIANTS = {
    "seed": lambda: seed_config(9, 11, 1.0, 5.0, 3.5),
    "hybrid": lambda: ModelConfig(9, 11, embedding_dim=4, hidden=(6, 5), factors=3),
    "linear-mlp": lambda: ModelConfig(9, 11, embedding_dim=4, hidden=(), factors=0),
    "everything": lambda: ModelConfig(
        9,
        11,
        embedding_dim=4,
        hidden=(6,),
        factors=3,
        rank_factors=2,
        implicit_nnz=20,
        n_user_features=2,
        n_movie_features=3,
    ),
    "unbounded": lambda: ModelConfig(9, 11, embedding_dim=4, hidden=(6,), factors=3, bounded=False),
}


def random_model(name: str, seed: int) -> RecommenderNet:
    """A ``VARIANTS[name]`` network with random weights, features and implicit pairs."""
    torch.manual_seed(seed)
    model = RecommenderNet(VARIANTS[name]())
    c = model.config
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.4)
        model.rank_mix.fill_(0.7)
        model.set_side_features(
            torch.randn(9, c.n_user_features), torch.randn(11, c.n_movie_features)
        )
    if c.implicit_nnz:
        rng = np.random.default_rng(seed)
        model.set_implicit(
            torch.from_numpy(rng.integers(0, 9, 20)), torch.from_numpy(rng.integers(0, 11, 20))
        )
    model.eval()
    return model


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_folded_and_plain_graphs_compute_the_model(name):
    model = random_model(name, seed=0)
    u = torch.randint(0, 9, (300,))
    m = torch.randint(0, 11, (300,))
    with torch.no_grad():
        want = model.predict_with_rank(u, m)
        for graph in (FoldedNet(model), ScoringModule(model)):
            got = graph(u, m)
            for g, w in zip(got, want, strict=True):
                torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_folding_cuts_the_operations_of_the_notebook_network_about_4x():
    model = RecommenderNet(seed_config(943, 1682, 1.0, 5.0, 3.5))
    plain, folded = count_flops_per_pair(model, False), count_flops_per_pair(model, True)
    assert plain == 2 * (200 * 128 + 128 * 64 + 64)
    assert 3.5 < plain / folded < 4.5


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_catalog_net_scores_every_movie_and_keeps_the_top_k(name):
    from movierec.export.folding import CatalogNet

    model = random_model(name, seed=1)
    net = CatalogNet(model)
    users = torch.tensor([0, 4, 8, 4])
    with torch.no_grad():
        rating, rank = net.scores(users)
        want_rating, want_rank = model.predict_with_rank(
            users.repeat_interleave(11), torch.arange(11).repeat(4)
        )
        torch.testing.assert_close(rating.reshape(-1), want_rating, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(rank.reshape(-1), want_rank, atol=1e-5, rtol=1e-5)
        exclude = torch.zeros(4, 11, dtype=torch.bool)
        exclude[1, :9] = True  # only two movies left for the second user
        rows, top_rating, top_rank = net(users, exclude, torch.tensor(3))
    assert rows.shape == (4, 3)
    assert set(rows[1, :2].tolist()) == {9, 10} and top_rank[1, 2] == float("-inf")
    expected = torch.topk(rank.masked_fill(exclude, float("-inf")), 3, dim=1)
    torch.testing.assert_close(top_rank, expected.values)
    torch.testing.assert_close(top_rating, torch.gather(rating, 1, rows))
