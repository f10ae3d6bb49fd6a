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
        pairs = np.random.default_rng(seed).choice(9 * 11, c.implicit_nnz, replace=False)
        model.set_implicit(torch.from_numpy(pairs // 11), torch.from_numpy(pairs % 11))
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
@pytest.mark.parametrize("mix", [0.7, -0.4])
def test_catalog_net_bounds_every_rank_score_and_keeps_the_top_k(name, mix):
    from movierec.export.folding import CatalogNet

    model = random_model(name, seed=1)
    model.rank_mix.fill_(mix)
    net = CatalogNet(model)
    users = torch.tensor([0, 4, 8, 4])
    with torch.no_grad():
        bound = net.upper_bounds(users)
        _, want_rank = model.predict_with_rank(
            users.repeat_interleave(11), torch.arange(11).repeat(4)
        )
        excluded = torch.tensor([11 + m for m in range(9)])  # second user: only 9, 10 left
        rows, top = net(users, excluded, torch.tensor(3))
    assert bound.shape == (4, 11)
    slack = bound.reshape(-1) - want_rank
    assert (slack >= -1e-5).all()  # an upper bound of every pair's rank score
    if net.exact:  # the seed-like variant: the bound is the score itself
        torch.testing.assert_close(slack, torch.zeros_like(slack), atol=1e-5, rtol=0)
    assert rows.shape == top.shape == (4, 3)
    assert set(rows[1, :2].tolist()) == {9, 10} and top[1, 2] == float("-inf")
    masked = bound.clone()
    masked[1, :9] = float("-inf")
    expected = torch.topk(masked, 3, dim=1)
    torch.testing.assert_close(top, expected.values)


def test_catalog_net_bound_is_tight_where_the_mlp_barely_varies():
    """The interval bound of the MLP spans only what the movies' box allows: with every
    movie's first layer equal, the bound is the exact rank score."""
    from movierec.export.folding import CatalogNet

    model = random_model("everything", seed=2)
    with torch.no_grad():
        cols = model.mcols["embedding"]
        model.movie_table.weight[:, cols] = model.movie_table.weight[0, cols]
        model.movie_side.weight[cols] = 0.0
        model.movie_implicit.weight[:, cols] = 0.0
        net = CatalogNet(model)
        users = torch.arange(9)
        bound = net.upper_bounds(users)
        _, want = model.predict_with_rank(users.repeat_interleave(11), torch.arange(11).repeat(9))
    torch.testing.assert_close(bound.reshape(-1), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["seed", "everything"])
def test_exported_catalog_graph_gives_the_torch_bounds(name, tmp_path):
    """Both kinds of catalog graph through onnxruntime: the exact one (the seed network)
    and the interval bound; exclusions as flat keys, the bounds highest first."""
    import json

    import onnxruntime as ort

    from movierec.export.folding import CatalogNet
    from movierec.export.onnx_export import export_catalog_onnx
    from movierec.serve_batch import contract

    net = CatalogNet(random_model(name, seed=3))
    path = tmp_path / "catalog.onnx"
    export_catalog_onnx(net, path, 11, 17, {})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map[contract.META_CATALOG])
    assert meta == {
        "format": contract.CATALOG_FORMAT,
        "movies": 11,
        "bound": "exact" if name == "seed" else "interval",
        "call_pairs": net.call_pairs,
    }
    users = np.array([8, 0, 3], dtype=np.int64)
    excluded = np.array([0, 5, 11 + 2, 33 - 1], dtype=np.int64)
    rows, bounds = session.run(
        None,
        {
            contract.INPUT_USER: users,
            contract.INPUT_EXCLUDED: excluded,
            contract.INPUT_K: np.array(11, dtype=np.int64),
        },
    )
    with torch.no_grad():
        want = net.upper_bounds(torch.from_numpy(users)).numpy()
    want.reshape(-1)[excluded] = -np.inf
    np.testing.assert_allclose(np.take_along_axis(want, rows, 1), bounds, atol=1e-5)
    np.testing.assert_allclose(bounds, -np.sort(-want, axis=1), atol=1e-5)
    assert np.isneginf(bounds[:, -2:]).sum() == 4 and np.isneginf(bounds).sum() == 4
