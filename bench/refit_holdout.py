"""How good is the refit? Each way of refitting measured on ratings no run has seen.

A refit trains on every rating, so only ratings kept from the whole night can judge it:
the newest ``--holdback`` (10%) of the data by time are held back, the night's evaluation
run and refits see the rest, and each refit model is scored on the held-back ratings as
``rec-score`` scores them (users and movies it does not know by the fallback):

- RMSE over every held-back rating;
- NDCG@10 of the held-back users the model knows, their relevant movies (rating >= 4)
  among the movies it knows that they had not rated before.

    python bench/refit_holdout.py --data ../shared/data/ml-100k [--variants scratch,1,2]

Variants: ``scratch`` (a new network for the evaluation run's best epoch count: the refit
before issue 22) and ``N`` (continue from the evaluated weights for N epochs), each in this
process, one after the other, on one torch thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def held_back(data, share: float):
    """``(night, tomorrow)``: ``data`` without its newest ``share`` of ratings by time, and
    those ratings as raw-ID arrays."""
    from movierec.train.data._dataset import RatingsData

    times = data.ratings["timestamp"].to_numpy()
    order = np.argsort(times, kind="stable")
    cut = len(order) - int(round(len(order) * share))
    keep = np.sort(order[:cut])
    later = order[cut:]
    vocab, users, movies = data.encoded
    tomorrow = (
        vocab.user_ids[users[later]],
        vocab.movie_ids[movies[later]],
        data.ratings["rating"].to_numpy()[later],
    )
    frame = data.ratings.iloc[keep].reset_index(drop=True)
    for col in ("user_id", "movie_id"):  # re-encode: the night knows only its own IDs
        if hasattr(frame[col], "cat"):
            frame[col] = frame[col].cat.remove_unused_categories()
    night = RatingsData(
        frame,
        data.users,
        data.movies,
        data.layout,
        data.rating_scale,
        data.fingerprint + ":night",
        data.path,
        data.columns,
    )
    return night, tomorrow


def score_tomorrow(checkpoint, tomorrow, k: int = 10) -> dict:
    """RMSE and NDCG@10 of a refit model on the held-back ratings."""
    from movierec.train.fallback import fit_fallback
    from movierec.train.metrics import ranking_metrics_many, ranking_task, rating_errors
    from movierec.train.pipeline import predict_known, score_users_fn
    from movierec.train.split import Part, Split

    split = checkpoint.split
    vocab = split.vocab
    users, movies, ratings = tomorrow

    def rows(ids, known_ids):
        at = np.minimum(np.searchsorted(known_ids, ids), len(known_ids) - 1)
        return at, known_ids[at] == ids

    u, u_in = rows(users, vocab.user_ids)
    m, m_in = rows(movies, vocab.movie_ids)
    known = fit_fallback([split.train], vocab.n_users, vocab.n_movies)
    pred = np.full(len(ratings), known.global_mean)
    both = u_in & m_in
    part = Part(u[both], m[both], ratings[both].astype(np.float32))
    pred[both] = predict_known(checkpoint.model, part, known)[0]
    only_movie = ~u_in & m_in
    only_user = u_in & ~m_in
    pred[only_movie] = known.movie_mean[m[only_movie]]
    pred[only_user] = known.user_mean[u[only_user]]
    c = checkpoint.model.config
    pred = np.clip(pred, c.rating_min, c.rating_max)
    out = {"rmse": rating_errors(pred, ratings)["rmse"], "cold_share": float((~both).mean())}
    night = Split(
        vocab, split.train, Part(part.user_idx[:0], part.movie_idx[:0], part.rating[:0]), part
    )
    task = ranking_task(night, "test", max_users=2000, seed=0, known=known)
    score = score_users_fn(checkpoint.model)
    found = ranking_metrics_many(task, lambda r: [score(r)], 1, k)[0]
    out["ndcg@10"] = found["ndcg@10"]
    out["users_ranked"] = found["users"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--holdback", type=float, default=0.1)
    parser.add_argument("--variants", default="scratch,1,2")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--split", default="random", help="the evaluation run's --split")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch

    from movierec.train.config import TrainConfig
    from movierec.train.data import load_ratings
    from movierec.train.pipeline import run_training
    from movierec.train.refit import refit_on_all_ratings

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    data = load_ratings(args.data)
    night, tomorrow = held_back(data, args.holdback)
    config = TrainConfig.for_arch(
        "hybrid",
        data=args.data,
        artifacts=Path("/tmp/refit_holdout"),
        seed=args.seed,
        split=args.split,
        quiet=True,
    )
    t0 = time.perf_counter()
    evaluated = run_training(config, night)
    eval_s = time.perf_counter() - t0
    m = evaluated.metrics
    print(
        f"{args.data}: night {len(night.ratings):,} ratings, {len(tomorrow[2]):,} held back; "
        f"evaluation run {eval_s:.0f} s, {m['epochs_run']} epochs (best {m['best_epoch']}), "
        f"holdout RMSE {m['test']['rmse']:.4f}, NDCG@10 {m['test']['ndcg@10']:.4f}"
    )
    results = {"evaluation": {"seconds": eval_s, "test": m["test"], "best_epoch": m["best_epoch"]}}
    print(f"{'refit':<22} {'seconds':>8} {'RMSE':>8} {'NDCG@10':>8}")
    for variant in args.variants.split(","):
        start = "scratch" if variant == "scratch" else "evaluated"
        epochs = None if variant == "scratch" else int(variant)
        t0 = time.perf_counter()
        refit = refit_on_all_ratings(
            config, evaluated.checkpoint, night, start=start, epochs=epochs
        )
        seconds = time.perf_counter() - t0
        got = score_tomorrow(refit.checkpoint, tomorrow)
        name = "scratch" if start == "scratch" else f"continue {epochs} epoch(s)"
        results[name] = {"seconds": seconds, **got, "epochs": refit.metrics["refit"]["epochs"]}
        print(f"{name:<22} {seconds:>8.1f} {got['rmse']:>8.4f} {got['ndcg@10']:>8.4f}")
    name = args.data.name + ("" if args.split == "random" else f"-{args.split}")
    out = args.out or ROOT / f"bench/results/refit_holdout-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
