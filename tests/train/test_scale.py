"""Training and evaluation whose cost follows the batch and the data, on small data:
per-batch implicit sums, sparse updates, blocked ranking metrics and sampled evaluation."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.train.config import TrainConfig
from movierec.train.implicit import neighbour_lists
from movierec.train.loop import make_optimizers, step_objective
from movierec.train.metrics import rank_top_k, ranking_metrics, ranking_metrics_many, ranking_task
from movierec.train.model import ModelConfig, RecommenderNet
from movierec.train.optim import RowAdam
from movierec.train.split import Part, Split, Vocabulary


def _pairs(n_users: int, n_movies: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    keys = np.random.default_rng(seed).choice(n_users * n_movies, n, replace=False)
    return keys // n_movies, keys % n_movies


def _model(n_users=12, n_movies=15, n=90, cap=0, seed=0) -> RecommenderNet:
    u, m = _pairs(n_users, n_movies, n, seed)
    users = neighbour_lists(u, m, n_users, cap, 7)
    movies = neighbour_lists(m, u, n_movies, cap, 8)
    torch.manual_seed(seed)
    model = RecommenderNet(
        ModelConfig(
            n_users,
            n_movies,
            embedding_dim=4,
            hidden=(5,),
            factors=3,
            rank_factors=2,
            implicit_nnz=users.nnz,
            implicit_movie_nnz=movies.nnz,
            implicit_cap=cap,
            implicit_movie_cap=cap,
            implicit_seed=7,
        )
    )
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    model.set_neighbours(users, movies)
    model.pairs = (u, m)  # for the tests' dense references
    return model


def test_neighbour_lists_without_cap_hold_every_distinct_pair():
    rows = np.array([2, 0, 2, 2, 0, 1, 2])
    cols = np.array([5, 1, 3, 5, 4, 0, 0])  # (2, 5) twice
    lists = neighbour_lists(rows, cols, 4)
    assert lists.indptr.tolist() == [0, 2, 3, 6, 6]
    assert lists.indices.tolist() == [1, 4, 0, 0, 3, 5]


def test_capped_lists_are_a_seeded_sample_of_each_row():
    u, m = _pairs(30, 40, 600, seed=1)
    full = neighbour_lists(u, m, 30)
    capped = neighbour_lists(u, m, 30, cap=5, seed=3)
    again = neighbour_lists(u, m, 30, cap=5, seed=3)
    other = neighbour_lists(u, m, 30, cap=5, seed=4)
    assert np.array_equal(capped.indices, again.indices)
    assert not np.array_equal(capped.indices, other.indices)
    assert (capped.lengths == np.minimum(full.lengths, 5)).all()
    for r in range(30):
        kept = capped.indices[capped.indptr[r] : capped.indptr[r + 1]]
        assert set(kept) <= set(full.indices[full.indptr[r] : full.indptr[r + 1]])
        assert (np.diff(kept) > 0).all()


def test_per_batch_implicit_sums_equal_the_full_matrix_product():
    model = _model()
    u, m = model.pairs
    c = model.config
    # the dense reference: a normalised users x movies incidence matrix times the vectors
    a = np.zeros((c.n_users, c.n_movies))
    a[u, m] = 1.0
    deg_u, deg_m = a.sum(1, keepdims=True), a.sum(0, keepdims=True)
    a_u = torch.from_numpy(a / np.sqrt(np.maximum(deg_u, 1))).float()
    a_m = torch.from_numpy((a / np.sqrt(np.maximum(deg_m, 1))).T).float()
    y, z = model.user_implicit.weight, model.movie_implicit.weight
    want_u = model.user_table.weight + a_u @ y
    want_m = model.movie_table.weight + a_m @ z
    batch_u = torch.tensor([3, 0, 3, 11, 5, 3])  # repeats are gathered once
    batch_m = torch.tensor([14, 2, 2, 0, 7])
    torch.testing.assert_close(model.batch_rows("user", batch_u).rows, want_u[batch_u])
    torch.testing.assert_close(model.batch_rows("movie", batch_m).rows, want_m[batch_m])
    with torch.no_grad():  # the export's tables come from the same lists
        users, movies = model.effective_tables()
    torch.testing.assert_close(users, want_u)
    torch.testing.assert_close(movies, want_m)


def test_capped_model_exports_the_neighbours_it_trained_with():
    model = _model(n=150, cap=3)
    assert model.config.implicit_nnz < 150
    idx = torch.arange(model.config.n_users)
    u, _ = model.pairs
    indptr, indices = model.user_nb_indptr, model.user_nb_indices
    with torch.no_grad():
        users, _ = model.effective_tables()
        torch.testing.assert_close(users, model.batch_rows("user", idx).rows)
        for r in range(model.config.n_users):
            # a capped list stands for the whole one: sqrt(count) / kept per vector
            kept = indices[indptr[r] : indptr[r + 1]]
            count = int((u == r).sum())
            assert len(kept) == min(count, 3)
            weight = np.sqrt(count) / max(len(kept), 1)
            want = model.user_table.weight[r] + weight * model.user_implicit.weight[kept].sum(0)
            torch.testing.assert_close(users[r], want)


def test_a_step_updates_only_the_rows_its_batch_used():
    model = _model(n_users=20, n_movies=25, n=60)
    config = TrainConfig(reg=0.05, lr=0.01)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    users, movies = torch.tensor([1, 4, 4]), torch.tensor([2, 9, 3])
    negatives = torch.tensor([7, 9, 11])
    optimizers = make_optimizers(model, config)
    assert any(isinstance(o, RowAdam) for o in optimizers)
    objective, _ = step_objective(model, config, users, movies, torch.ones(3) * 4, negatives)
    for opt in optimizers:
        opt.zero_grad()
    objective.backward()
    assert model.user_table.weight.grad.is_sparse
    for opt in optimizers:
        opt.step()

    def changed(name: str) -> set[int]:
        now = dict(model.named_parameters())[name].detach()
        return set(np.flatnonzero((now != before[name]).any(1).numpy()).tolist())

    lists_u = model.user_nb_indptr.numpy(), model.user_nb_indices.numpy()
    lists_m = model.movie_nb_indptr.numpy(), model.movie_nb_indices.numpy()

    def neighbours(lists, rows) -> set[int]:
        indptr, indices = lists
        return {int(j) for r in rows for j in indices[indptr[r] : indptr[r + 1]]}

    assert changed("user_table.weight") == {1, 4}
    assert changed("movie_table.weight") == {2, 3, 7, 9, 11}
    assert changed("user_implicit.weight") == neighbours(lists_u, [1, 4])
    assert changed("movie_implicit.weight") == neighbours(lists_m, [2, 3, 7, 9, 11])
    assert changed("mlp.0.weight")  # the dense part moved


# --- ranking metrics ------------------------------------------------------------------


def _dense_reference(split: Split, scores: np.ndarray, k: int, users: np.ndarray) -> dict:
    """The protocol the obvious way: dense masks and a full stable sort per user."""
    n_movies = split.vocab.n_movies
    seen = np.zeros((split.vocab.n_users, n_movies), bool)
    for p in (split.train, split.val):
        seen[p.user_idx, p.movie_idx] = True
    rel = np.zeros_like(seen)
    good = split.test.rating >= 4
    rel[split.test.user_idx[good], split.test.movie_idx[good]] = True
    out = np.zeros(3)
    for u in users:
        s = np.where(seen[u], -np.inf, scores[u])
        top = np.argsort(-s, kind="stable")[:k]
        hits = rel[u, top]
        disc = 1 / np.log2(np.arange(2, k + 2))
        out += [
            hits.sum() / k,
            hits.sum() / rel[u].sum(),
            (hits * disc).sum() / disc[: min(rel[u].sum(), k)].sum(),
        ]
    return dict(zip(["precision", "recall", "ndcg"], out / len(users), strict=True))


def _random_split(seed: int, n_users=40, n_movies=30) -> tuple[Split, np.ndarray]:
    rng = np.random.default_rng(seed)
    u, m = _pairs(n_users, n_movies, 500, seed)
    r = rng.integers(1, 6, u.size).astype(np.float32)
    part = lambda s: Part(u[s], m[s], r[s])  # noqa: E731
    split = Split(
        Vocabulary(np.arange(n_users) + 1, np.arange(n_movies) + 1),
        part(slice(0, 350)),
        part(slice(350, 420)),
        part(slice(420, 500)),
    )
    scores = rng.integers(0, 6, (n_users, n_movies)).astype(np.float64)  # many ties
    return split, scores


@pytest.mark.parametrize("block", [1, 7, None])
def test_blocked_metrics_equal_a_dense_reference(block):
    split, scores = _random_split(seed=3)
    got = ranking_metrics(split, lambda rows: scores[rows], k=5, block=block)
    users = np.unique(split.test.user_idx[split.test.rating >= 4])
    want = _dense_reference(split, scores, 5, users)
    assert got["users"] == got["users_eligible"] == users.size
    assert got["precision@5"] == pytest.approx(want["precision"], abs=1e-12)
    assert got["recall@5"] == pytest.approx(want["recall"], abs=1e-12)
    assert got["ndcg@5"] == pytest.approx(want["ndcg"], abs=1e-12)


def test_sampled_metrics_evaluate_a_fixed_seeded_subset():
    split, scores = _random_split(seed=4)
    task = ranking_task(split, max_users=10, seed=1)
    assert task.users.size == 10 and task.eligible > 10
    assert np.array_equal(task.users, ranking_task(split, max_users=10, seed=1).users)
    got = ranking_metrics_many(task, lambda rows: [scores[rows]], 1, k=5)[0]
    want = _dense_reference(split, scores, 5, task.users)
    assert (got["users"], got["users_eligible"]) == (10, task.eligible)
    assert got["ndcg@5"] == pytest.approx(want["ndcg"], abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([0.0, 1.0, 2.5, -np.inf]), min_size=6, max_size=6),
        min_size=1,
        max_size=4,
    ),
    st.integers(1, 6),
)
def test_rank_top_k_is_the_stable_sort(rows, k):
    scores = np.array(rows)
    want = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    assert rank_top_k(scores, k).tolist() == want.tolist()


def test_score_catalog_equals_pairwise_predictions():
    model = _model().eval()
    c = model.config
    users = torch.tensor([0, 5, 11])
    with torch.no_grad():
        model.rank_mix.fill_(0.6)
        rating, rank = model.score_catalog(users)
        u = users.repeat_interleave(c.n_movies)
        m = torch.arange(c.n_movies).repeat(len(users))
        want_rating, want_rank = model.predict_with_rank(u, m)
    torch.testing.assert_close(rating.reshape(-1), want_rating)
    torch.testing.assert_close(rank.reshape(-1), want_rank)


def test_row_adam_computes_sparse_adam():
    torch.manual_seed(0)
    a = torch.nn.Embedding(50, 4, sparse=True)
    b = torch.nn.Embedding(50, 4, sparse=True)
    b.weight.data.copy_(a.weight.data)
    initial = a.weight.detach().clone()
    opt_a, opt_b = torch.optim.SparseAdam(a.parameters(), lr=0.05), RowAdam(b.parameters(), lr=0.05)
    for step in range(5):
        idx = torch.tensor([step, 7, 7, 20 + step])  # a repeated row; rows come and go
        for emb, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            (emb(idx) ** 3).sum().backward()
            opt.step()
    torch.testing.assert_close(b.weight, a.weight)
    assert torch.equal(b.weight[40], initial[40])  # never used: unchanged


def test_defaults_follow_the_data_size():
    config = TrainConfig.for_arch("hybrid")
    small, large = config.for_data(70_000), config.for_data(3_500_000)
    assert (small.implicit, small.batch_size, small.patience) == (True, 2048, 2)
    assert (large.implicit, large.batch_size, large.patience) == (False, 8192, 1)
    forced = TrainConfig.for_arch("hybrid", implicit=True, batch_size=100).for_data(10**7)
    assert (forced.implicit, forced.batch_size) == (True, 100)
    seed = TrainConfig.for_arch("seed").for_data(10**7)
    assert (seed.implicit, seed.batch_size) == (False, 64)
    assert config.threads == 1 and TrainConfig.for_arch("hybrid", threads=2).threads == 2


def test_sampled_ranking_is_recorded_in_metrics(synthetic_ml100k, trained_artifacts, tmp_path):
    import json

    from movierec.serve_batch import contract
    from movierec.train.pipeline import run_training
    from tests.conftest import TINY

    whole = json.loads((trained_artifacts / contract.METRICS_FILE).read_text())
    protocol = whole["ranking_protocol"]
    assert protocol["user_sample"] == "all"
    assert protocol["users_evaluated"] == protocol["users_with_relevant"] > 20
    assert whole["implicit_terms"]["used"] and whole["config"]["batch_size"] == TINY["batch_size"]
    config = TrainConfig.for_arch(
        "hybrid",
        data=synthetic_ml100k,
        artifacts=tmp_path,
        quiet=True,
        eval_users=20,
        **{**TINY, "epochs": 1},
    )
    metrics = run_training(config).metrics
    protocol = metrics["ranking_protocol"]
    assert protocol["users_evaluated"] == 20 < protocol["users_with_relevant"]
    assert protocol["user_sample"] == {"max_users": 20, "seed": 0}
    assert metrics["rank_mix"]["users_evaluated"] == 20


def test_refit_keeps_the_evaluation_runs_data_size_defaults(
    synthetic_ml100k, trained_artifacts, tmp_path, monkeypatch
):
    from movierec.serve_batch import contract
    from movierec.train import config as config_module
    from movierec.train.checkpoint import load_checkpoint
    from movierec.train.refit import refit_on_all_ratings
    from tests.conftest import TINY

    evaluated = load_checkpoint(trained_artifacts / contract.CHECKPOINT_FILE)
    n_train = len(evaluated.split.train)
    assert evaluated.model.config.implicit_nnz  # small data: implicit terms on
    # all the ratings would count as large data, the evaluation run's training part not
    monkeypatch.setattr(config_module, "LARGE_DATA_RATINGS", n_train)
    config = TrainConfig.for_arch(
        "hybrid", data=synthetic_ml100k, artifacts=tmp_path, quiet=True, **{**TINY, "epochs": 1}
    )
    refit = refit_on_all_ratings(config, evaluated)
    assert refit.checkpoint.model.config.implicit_nnz > evaluated.model.config.implicit_nnz
