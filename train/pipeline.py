"""``run_training``: data -> split -> model -> metrics -> artifacts, for ``rec-train``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from movierec.db._uri import is_database_uri
from movierec.serve_batch import contract
from movierec.serve_batch.atomic import atomic_path
from movierec.serve_batch.errors import UsageError
from movierec.train import head_fit, item_item, recency
from movierec.train.checkpoint import Checkpoint, package_version, save_checkpoint, utc_now
from movierec.train.config import NETWORKS, TIME_SPLITS, TrainConfig, recorded_path
from movierec.train.data import RatingsData, load_ratings, resolve_data_path
from movierec.train.data._vocab import id_type
from movierec.train.fallback import Fallback, fit_fallback
from movierec.train.features import movie_features, user_features
from movierec.train.implicit import Neighbours, neighbour_lists
from movierec.train.loop import History, deterministic_algorithms, fit, predict_part
from movierec.train.metrics import (
    popularity_scores,
    ranking_metrics_many,
    ranking_task,
    rating_errors,
)
from movierec.train.model import ModelConfig, RecommenderNet
from movierec.train.split import Part, Split, describe_split, split_data

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    checkpoint: Checkpoint
    history: History
    metrics: dict
    artifacts: Path


def implicit_neighbours(config: TrainConfig, split: Split) -> tuple[Neighbours, Neighbours]:
    """The neighbour lists of the implicit terms: each user's movies and each movie's raters
    in the training part, capped as ``config`` says (empty where a side is off)."""
    train, vocab = split.train, split.vocab
    if config.arch == "seed" or not config.for_data(len(train)).implicit:
        empty = neighbour_lists(np.zeros(0), np.zeros(0), 0)
        return empty, empty
    users = neighbour_lists(
        train.user_idx, train.movie_idx, vocab.n_users, config.implicit_cap, config.seed
    )
    movies = neighbour_lists(
        train.movie_idx, train.user_idx, vocab.n_movies, config.implicit_movie_cap, config.seed + 1
    )
    return users, movies


def build_model_config(
    config: TrainConfig,
    split: Split,
    scale: tuple[float, float],
    n_user_features: int = 0,
    n_movie_features: int = 0,
    neighbours: tuple[Neighbours, Neighbours] | None = None,
) -> ModelConfig:
    """The network for ``config.arch``, sized to the vocabulary, the rating scale and the
    implicit neighbour lists (built here unless given); what the architecture fixes
    beyond the options: ``NETWORKS``."""
    users, movies = neighbours or implicit_neighbours(config, split)
    return ModelConfig(
        n_users=split.vocab.n_users,
        n_movies=split.vocab.n_movies,
        arch=config.arch,
        embedding_dim=config.embedding_dim,
        hidden=tuple(config.hidden),
        factors=config.factors,
        rating_min=scale[0],
        rating_max=scale[1],
        global_mean=float(split.train.rating.mean()),
        n_user_features=n_user_features,
        n_movie_features=n_movie_features,
        rank_factors=config.rank_factors,
        implicit_nnz=users.nnz,
        implicit_movie_nnz=movies.nnz,
        implicit_cap=config.implicit_cap,
        implicit_movie_cap=config.implicit_movie_cap,
        implicit_seed=config.seed,
        **NETWORKS[config.arch],
    )


def score_users_fn(model: RecommenderNet, n_movies: int | None = None):
    """A function scoring every movie for a block of user rows (for ranking metrics)."""

    def score(rows: np.ndarray) -> np.ndarray:
        return model.score_catalog(torch.from_numpy(rows.astype(np.int64)))[1].numpy()

    return score


def predict_known(
    model: RecommenderNet, part: Part, known: Fallback
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for every row of ``part`` as the exported model makes them: pairs of a
    user and a movie the model knows through the network, the rest by the fallback
    (clipped to the rating scale). Returns the predictions and the cold-start mask."""
    ok = known.known(part.user_idx, part.movie_idx)
    if ok.all():
        return predict_part(model, part), ~ok
    pred = np.empty(len(part), dtype=np.float32)
    pred[ok] = predict_part(model, Part(part.user_idx[ok], part.movie_idx[ok], part.rating[ok]))
    c = model.config
    cold = known.predict(part.user_idx[~ok], part.movie_idx[~ok])
    pred[~ok] = np.clip(cold, c.rating_min, c.rating_max)
    return pred, ~ok


def evaluate(
    model: RecommenderNet,
    split: Split,
    known: Fallback,
    k: int = 10,
    max_users: int = 0,
    val: dict[str, float] | None = None,
) -> dict:
    """Validation and test errors, test ranking metrics, and the two baselines.

    ``known``: what ``model`` knows (the parts it was trained on); pairs of other users or
    movies are scored by the fallback, as ``rec-score`` scores them, and their share of the
    test pairs is ``test.cold_start_share``. Ranking metrics cover every test user the model
    knows with a relevant movie, or a seeded sample of ``max_users`` of them where there are
    more (0: all); ``ranking_protocol`` says which. ``val``: the validation errors to report
    where ``model`` has seen those ratings (a refit): the first run's."""
    if val is None:
        val = rating_errors(predict_known(model, split.val, known)[0], split.val.rating)
    predicted, cold = predict_known(model, split.test, known)
    test = rating_errors(predicted, split.test.rating)
    test["cold_start_share"] = float(cold.mean()) if cold.size else 0.0
    task = ranking_task(split, "test", max_users=max_users, seed=EVAL_SAMPLE_SEED, known=known)
    test.update(ranking_metrics_many(task, lambda rows: [score_users_fn(model)(rows)], 1, k)[0])
    users, eligible = test.pop("users"), test.pop("users_eligible")
    mean = float(split.train.rating.mean())
    pop = popularity_scores(split)
    popularity = ranking_metrics_many(task, lambda rows: [np.tile(pop, (len(rows), 1))], 1, k)[0]
    popularity.pop("users")
    popularity.pop("users_eligible")
    return {
        "val": val,
        "test": test,
        "baselines": {
            "global_mean": {
                "val": rating_errors(np.full(len(split.val), mean), split.val.rating),
                "test": rating_errors(np.full(len(split.test), mean), split.test.rating),
            },
            "popularity": {"test": popularity},
        },
        "ranking_protocol": {
            "k": k,
            "relevance": "test rating >= 4",
            "candidates": (
                "movies the model knows that the user did not rate in train or validation"
            ),
            "users": "test users the model knows (a rating in the parts it was trained on)",
            "users_evaluated": users,
            "users_with_relevant": eligible,
            "users_unknown_to_model": task.unknown_users,
            "user_sample": (
                {"max_users": max_users, "seed": EVAL_SAMPLE_SEED}
                if users < eligible - task.unknown_users
                else "all"
            ),
        },
    }


#: Weights of the rating in the ranking score tried on the validation split.
RANK_MIX_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: Seeds the sample of users whose rankings are evaluated where there are too many.
EVAL_SAMPLE_SEED = head_fit.EVAL_SAMPLE_SEED


def choose_rank_mix(
    model: RecommenderNet, split: Split, max_users: int = 0, known: Fallback | None = None
) -> dict:
    """Pick the rating's weight in ``rank_score`` by validation NDCG@10 (never the test).

    Each block of users is scored once: ``rank_score = rank logit + mix x rating`` is
    formed for every mix from the same rating and rank logit, as the model would."""
    model.rank_mix.fill_(0.0)

    def score_every_mix(rows: np.ndarray) -> list[np.ndarray]:
        rating, rank_logit = model.score_catalog(torch.from_numpy(rows.astype(np.int64)))
        return [(rank_logit + mix * rating).numpy() for mix in RANK_MIX_GRID]

    task = ranking_task(split, "val", max_users=max_users, seed=EVAL_SAMPLE_SEED, known=known)
    found = ranking_metrics_many(task, score_every_mix, len(RANK_MIX_GRID))
    tried = {mix: m["ndcg@10"] for mix, m in zip(RANK_MIX_GRID, found, strict=True)}
    best = max(tried, key=lambda m: (tried[m], -m))
    model.rank_mix.fill_(best)
    shown = ", ".join(f"{mix:g}: {float(v):.4f}" for mix, v in tried.items())
    log.info("rank mix by validation NDCG@10: {%s} -> %g", shown, best)
    return {
        "chosen": best,
        "val_ndcg@10": {str(k): v for k, v in tried.items()},
        "users_evaluated": found[0]["users"],
    }


def load_data(config: TrainConfig) -> RatingsData:
    """The ratings ``config`` names (``config.data``, else $MOVIEREC_DATA, else the cached
    ml-100k download), read with its columns and items table."""
    source = config.data if is_database_uri(config.data) else resolve_data_path(config.data)
    data = load_ratings(
        source,
        config.columns,
        config.items,
        need_time=config.split in TIME_SPLITS,
        table=config.table,
        query=config.query,
    )
    vocab = data.encoded[0]
    log.info(
        "data: %s (%s, %d ratings, %d users, %d movies, %s/%s IDs, scale %g-%g)",
        data.path,
        data.layout,
        len(data.ratings),
        vocab.n_users,
        vocab.n_movies,
        vocab.id_types["user"],
        vocab.id_types["movie"],
        *data.rating_scale,
    )
    return data


def choose_recency(
    model: RecommenderNet, split: Split, max_users: int = 0, known: Fallback | None = None
) -> dict:
    """The weight of the recency prior (``movierec.train.recency``) by validation NDCG@10,
    the head fit on train and the rank mix as chosen; the model is left holding the chosen
    prior of the training part. Each block of users is scored once for every weight."""
    base = torch.from_numpy(recency.prior(split.recent["train"]))
    model.set_rank_bias(torch.zeros_like(base))

    def score_every_beta(rows: np.ndarray) -> list[np.ndarray]:
        _, rank = model.score_catalog(torch.from_numpy(rows.astype(np.int64)))
        return [(rank + beta * base).numpy() for beta in recency.BETA_GRID]

    task = ranking_task(split, "val", max_users=max_users, seed=EVAL_SAMPLE_SEED, known=known)
    found = ranking_metrics_many(task, score_every_beta, len(recency.BETA_GRID))
    tried = {b: m["ndcg@10"] for b, m in zip(recency.BETA_GRID, found, strict=True)}
    best = max(tried, key=lambda b: (tried[b], -b))
    model.set_rank_bias(best * base)
    shown = ", ".join(f"{b:g}: {float(v):.4f}" for b, v in tried.items())
    log.info("recency prior by validation NDCG@10: {%s} -> %g", shown, best)
    return {
        "chosen": best,
        "val_ndcg@10": {str(k): v for k, v in tried.items()},
        "share": recency.RECENT_SHARE,
        "prior": "log(1 + ratings in the newest share of the period), RMS 1",
    }


def install_recency(model: RecommenderNet, split: Split, key: str, beta: float | None) -> None:
    """Put ``beta`` x the recency prior of the ratings ``key`` names (``Split.recent``) in
    the model's rank bias; nothing where there is no weight or no rating times."""
    if beta and split.recent is not None:
        model.set_rank_bias(torch.from_numpy(beta * recency.prior(split.recent[key])))


def run_training(
    config: TrainConfig,
    data: RatingsData | None = None,
    *,
    write_checkpoint: bool = True,
    release_data: bool = False,
) -> TrainResult:
    """Train on ``config.data`` (or on ``data``, already loaded from it) and write every
    artifact into ``config.artifacts``; with ``write_checkpoint`` False only
    ``metrics.json`` and the curves (a nightly run keeps the checkpoint in memory and needs
    neither it nor the pairs files: at 25M ratings they are 0.6 GB and 2.5 s).

    The ratings table is freed once split (``RatingsData.release_ratings``) where it was
    read here, or where ``release_data`` says so (a caller that needs only the data's
    other fields afterwards, such as the refit)."""
    artifacts = prepare_artifacts_dir(config.artifacts)
    torch.set_num_threads(config.threads)
    if data is None:
        data, release_data = load_data(config), True
    split = split_data(data, config.split, seed=config.seed, test_size=config.test_size)
    if release_data:
        data.release_ratings()
    return train_and_write(config, data, split, artifacts, write_checkpoint)


def train_and_write(
    config: TrainConfig,
    data: RatingsData,
    split: Split,
    artifacts: Path,
    write_checkpoint: bool = True,
) -> TrainResult:
    """:func:`train_on_split`, then every artifact of ``rec-train`` into ``artifacts``
    (benchmarks use it to keep one split while the model seed varies)."""
    model, history, metrics = train_on_split(config, data, split)
    ckpt = Checkpoint(
        model=model,
        split=split,
        rating_scale=data.rating_scale,
        data_fingerprint=data.fingerprint,
        data_layout=data.layout,
        train_config=metrics["config"],  # with the options set by data size
        metrics=metrics,
        titles=titles_of(data),
        package_version=package_version(),
        created_at=utc_now(),
        trained_on=tuple(metrics["trained_on"]),
        columns=data.columns.to_dict(),
    )
    write_json(artifacts / contract.METRICS_FILE, metrics)
    if write_checkpoint:
        save_checkpoint(artifacts / contract.CHECKPOINT_FILE, ckpt)
        names = (data.columns.user, data.columns.movie)
        write_pairs(artifacts / contract.TEST_PAIRS_FILE, split, [split.test], names)
        write_pairs(
            artifacts / contract.TRAIN_VAL_PAIRS_FILE, split, [split.train, split.val], names
        )
    plot_curves(artifacts / contract.CURVES_FILE, history)
    return TrainResult(ckpt, history, metrics, artifacts)


def train_on_split(
    config: TrainConfig, data: RatingsData, split: Split
) -> tuple[RecommenderNet, History, dict]:
    """Build, train and evaluate the model of ``config`` on a given split (no files).

    Options left None are set for the split's size first (``TrainConfig.for_data``);
    the metrics record the values used. Everything chosen (epoch count, the item-item
    head's lambda, the rank mix) is chosen on the validation split; with
    ``refit_validation`` the model is then trained again on train + validation for the
    chosen epoch count, and only then sees the test split, once."""
    config = config.for_data(len(split.train))
    log.info(
        "split: %d train / %d val / %d test", len(split.train), len(split.val), len(split.test)
    )
    users = config.eval_users
    n_users, n_movies = split.vocab.n_users, split.vocab.n_movies
    known = fit_fallback([split.train], n_users, n_movies)
    # the item-item head needs the ratings, not the network: fit it on the other core
    head_fit_ = head_fit.Beside(
        config.parallel_head and uses_item_item(config),
        head_fit.fit_item_item_head,
        split,
        config.rank_factors,
        data.rating_scale,
        config.seed,
        lam=config.item_item_lambda,
        eval_users=users,
        known=known,
    )
    try:
        with deterministic_algorithms():
            model, history = build_and_fit(config, data, split)
    except BaseException:
        head_fit_.cancel()
        raise
    with deterministic_algorithms():
        val = rating_errors(predict_known(model, split.val, known)[0], split.val.rating)
        head = head_fit_.result() if uses_item_item(config) else None
        if head is not None:
            model.set_rank_factors(*(torch.from_numpy(f) for f in head.on_train))
        mix = choose_rank_mix(model, split, users, known) if model.config.rank_factors else {}
        recent = {}
        if head is not None and split.recent is not None:
            recent = choose_recency(model, split, users, known)
        refit = {}
        trained_on = ["train"]
        if config.refit_validation:
            model, refit = refit_on_validation(config, data, split, history, model)
            trained_on = ["train", "val"]
            known = fit_fallback([split.train, split.val], n_users, n_movies)
        if head is not None:
            model.set_rank_factors(*(torch.from_numpy(f) for f in head.on_known))
            install_recency(model, split, "train+val", recent.get("chosen"))
        metrics = evaluate(model, split, known, max_users=users, val=val)
    metrics["rank_mix"] = mix
    if recent:
        metrics["recency"] = recent
    metrics["rank_head"] = {"kind": config.rank_head if model.config.rank_factors else "none"}
    metrics["rank_head"].update(head.info if head is not None else {})
    if refit:
        metrics["refit_validation"] = refit
    c = model.config
    metrics["implicit_terms"] = {
        "used": bool(c.implicit_nnz),
        "user_list_entries": c.implicit_nnz,
        "movie_list_entries": c.implicit_size("movie"),
        "user_cap": c.implicit_cap,
        "movie_cap": c.implicit_movie_cap,
    }
    metrics.update(
        epochs_run=history.epochs_run,
        best_epoch=history.best_epoch,
        train_seconds=round(history.seconds, 3),
        history={"train_mse": history.train_loss, "val_rmse": history.val_rmse},
        config=config.to_dict(),
        split=describe_split(split, config.split, config.test_size),
        trained_on=trained_on,
        data={
            "path": (
                data.path
                if isinstance(data.path, str)
                else recorded_path(data.path, config.artifacts)
            ),
            "layout": data.layout,
            "fingerprint": data.fingerprint,
            **data.counts(),
            "duplicates_dropped": data.duplicates_dropped,
            "columns": data.columns.to_dict(),
            "id_types": split.vocab.id_types,
            "rating_scale": list(data.rating_scale),
        },
        versions={
            "movierec": package_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    )
    return model, history, metrics


def build_model(config: TrainConfig, data: RatingsData, split: Split) -> RecommenderNet:
    """The network of ``config`` for this split, initialised (seeded), with its side
    information and the implicit terms' neighbour lists of its training part."""
    if config.side_features:
        uf, mf = user_features(data.users, split.vocab), movie_features(data.movies, split.vocab)
    else:
        uf = np.zeros((split.vocab.n_users, 0), np.float32)
        mf = np.zeros((split.vocab.n_movies, 0), np.float32)
    neighbours = implicit_neighbours(config, split)
    torch.manual_seed(config.seed)
    model = RecommenderNet(
        build_model_config(config, split, data.rating_scale, uf.shape[1], mf.shape[1], neighbours)
    )
    model.set_side_features(torch.from_numpy(uf), torch.from_numpy(mf))
    model.set_neighbours(*neighbours)
    return model


def build_and_fit(
    config: TrainConfig, data: RatingsData, split: Split
) -> tuple[RecommenderNet, History]:
    """:func:`build_model`, trained with early stopping on the split's validation part (or
    for ``config.epochs`` where validation is in the training part)."""
    model = build_model(config, data, split)
    history = fit(model, split.train, split.val, config, val_in_train=split.val_in_train)
    return model, history


def train_and_validation(split: Split) -> Split:
    """The split with its validation ratings added to the training part (validation and
    test stay: the loop still reports validation, now in-sample)."""
    known = Part.concat([split.train, split.val])
    return Split(split.vocab, known, split.val, split.test, val_in_train=True, recent=split.recent)


def refit_on_validation(
    config: TrainConfig,
    data: RatingsData,
    split: Split,
    history: History,
    evaluated: RecommenderNet,
) -> tuple[RecommenderNet, dict]:
    """Train ``config`` again on train + validation for the first run's best epoch count
    (no early stopping: validation is in-sample now), keeping the first run's rank mix."""
    epochs = max(1, history.best_epoch or history.epochs_run)
    merged = train_and_validation(split)
    log.info("refit: %d epochs on train + validation (%d ratings)", epochs, len(merged.train))
    refit_config = config.with_(epochs=epochs, patience=0, refit_validation=False)
    model, refit_history = build_and_fit(refit_config, data, merged)
    with torch.no_grad():
        model.rank_mix.copy_(evaluated.rank_mix)
    return model, {
        "ratings": len(merged.train),
        "epochs": epochs,
        "train_seconds": round(refit_history.seconds, 3),
        "train_mse": refit_history.train_loss,
        "note": (
            "trained again on train + validation for the first run's best epoch count; "
            "val metrics are the first run's (the refit model has seen those ratings)"
        ),
    }


def uses_item_item(config: TrainConfig) -> bool:
    return config.rank_head == "item-item" and config.rank_factors > 0 and config.arch != "seed"


def install_item_item(
    model: RecommenderNet, split: Split, parts: list[Part], lam_multiple: float, seed: int
) -> None:
    """Fit the item-item head on the ratings of ``parts`` and put it in the model."""
    c = model.config
    spec = head_fit.spectrum(split, parts, c.rank_factors, (c.rating_min, c.rating_max), seed)
    user, movie = item_item.head_factors(spec, lam_multiple)
    model.set_rank_factors(torch.from_numpy(user), torch.from_numpy(movie))


def prepare_artifacts_dir(path: Path) -> Path:
    """Create the artifacts folder, or fail before training if it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / ".write-test"):
            pass
        (path / ".write-test").unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to the artifacts folder {path}: {exc.strerror}") from None
    return path


def titles_of(data: RatingsData) -> dict:
    """Movie ID (int, or str for string IDs) -> title, where the data has titles."""
    if data.movies is None:
        return {}
    ids = data.movies["movie_id"].to_numpy()
    keys = ids.tolist() if id_type(ids) == "string" else ids.astype(np.int64).tolist()
    return dict(zip(keys, data.movies["title"].astype(str), strict=True))


def write_json(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_pairs(
    path: Path,
    split: Split,
    parts: list[Part],
    names: tuple[str, str] = (contract.USER_COL, contract.MOVIE_COL),
) -> None:
    """Raw-ID pairs of some split parts with their ratings, as input for ``rec-score`` (and
    ``--exclude``): the ID columns named ``names`` (the data's), IDs of the data's type, and
    the rating in ``rating`` (the column ``rec-score`` measures RMSE against)."""
    pairs = Part.concat(parts)
    table = pa.table(
        {
            names[0]: split.vocab.raw_users(pairs.user_idx),
            names[1]: split.vocab.raw_movies(pairs.movie_idx),
            contract.RATING_COL: pa.array(pairs.rating.astype(np.float32), type=pa.float32()),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def plot_curves(path: Path, history: History) -> None:
    """Training loss (MSE) and validation loss (MSE) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, history.epochs_run + 1)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(epochs, history.train_loss, marker="o", label="train MSE")
    ax.plot(epochs, np.square(history.val_rmse), marker="o", label="validation MSE")
    if history.best_epoch:
        ax.axvline(history.best_epoch, color="grey", linestyle=":", label="best checkpoint")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE)")
    ax.set_title("rec-train learning curves")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
