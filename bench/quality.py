"""Model quality side by side on the same split of the real data.

One table: global mean, popularity, EASE (fit on the training part and on train +
validation, lambda chosen on validation), the seed notebook's network, the previous
default (BPR ranking head, no weight average, no refit on validation) and our default
(mean and spread over three model seeds on the seed split), on ml-100k; the default's
mean RMSE over ml-100k's five u1-u5 folds; and the default on ml-latest-small (with
popularity and EASE beside it).

With ``--split time`` or ``--split user-time`` (``rec-train --split``): on ml-100k and
ml-latest-small, the default (three model seeds) beside popularity, recent popularity
(counted over the newest 15% of the period that train + validation span) and EASE, all
ranked under the same protocol (the test users and movies that train + validation know).

    python bench/quality.py [--data-dir ../shared/data] [--skip-folds] [--skip-small]\
                            [--skip-previous] [--split random|time|user-time]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._ease import ease, known_at_test  # noqa: E402
from movierec.train.config import SPLITS, TrainConfig  # noqa: E402
from movierec.train.data import load_movielens  # noqa: E402
from movierec.train.metrics import ranking_metrics_many, ranking_task  # noqa: E402
from movierec.train.pipeline import train_on_split  # noqa: E402
from movierec.train.split import (  # noqa: E402
    split_data,
    split_given_test,
    split_rows,
)

#: Recent popularity counts the ratings of the newest this share of the training period.
RECENT_SHARE = 0.15

SEEDS = (42, 43, 44)
#: The default before the item-item head (issue 14), for the side-by-side rows.
PREVIOUS = dict(rank_head="bpr", ema=0.0, refit_validation=False)
COLUMNS = ("rmse", "mae", "precision@10", "recall@10", "ndcg@10")


def row(name: str, values: dict[str, float], spread: dict[str, float] | None = None) -> list:
    cells = [name]
    for c in COLUMNS:
        if c not in values:
            cells.append("-")
        elif spread:
            cells.append(f"{values[c]:.4f} ±{spread[c]:.4f}")
        else:
            cells.append(f"{values[c]:.4f}")
    return cells


def print_table(title: str, rows: list[list]) -> None:
    header = ["model", *COLUMNS]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--skip-folds", action="store_true", help="skip the u1-u5 folds")
    parser.add_argument("--skip-small", action="store_true", help="skip ml-latest-small")
    parser.add_argument(
        "--skip-previous", action="store_true", help="skip the previous default's rows"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/quality.json")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (as rec-train)")
    parser.add_argument(
        "--split", choices=SPLITS, default="random", help="the split (rec-train --split)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    if args.split != "random":
        if args.out == parser.get_default("out"):
            args.out = args.out.with_name(f"quality-{args.split}.json")
        time_split_report(args)
        return
    result: dict = {}
    started = time.perf_counter()

    data = load_movielens(args.data_dir / "ml-100k")
    split = split_data(data, "random", seed=42)
    runs = []
    for seed in SEEDS:
        config = TrainConfig.for_arch("hybrid", seed=seed, quiet=True)
        runs.append(train_on_split(config, data, split)[2])
    previous = []
    if not args.skip_previous:
        for seed in SEEDS:
            config = TrainConfig.for_arch("hybrid", seed=seed, quiet=True, **PREVIOUS)
            previous.append(train_on_split(config, data, split)[2])
    _, _, seed_net = train_on_split(TrainConfig.for_arch("seed", quiet=True), data, split)
    reference = ease(split)
    base = runs[0]["baselines"]
    ours = {c: float(np.mean([r["test"][c] for r in runs])) for c in COLUMNS}
    spread = {
        c: float(np.max([r["test"][c] for r in runs]) - np.min([r["test"][c] for r in runs]))
        for c in COLUMNS
    }
    rows = [
        row("global mean", base["global_mean"]["test"]),
        row("popularity (most rated first)", base["popularity"]["test"]),
        row(f"EASE, train (lambda {reference['lambda']:g} on val)", reference["train"]),
        row("EASE, train + val (same lambda)", reference["train+val"]),
        row("seed notebook network", seed_net["test"]),
    ]
    if previous:
        before = {c: float(np.mean([r["test"][c] for r in previous])) for c in COLUMNS}
        rows.append(row("previous default (BPR head, mean of seeds)", before))
    rows.append(row(f"ours, default (mean of seeds {','.join(map(str, SEEDS))})", ours, spread))
    print_table("ml-100k, seed split (70/15/15, random_state=42), test part", rows)
    print("  (± is max - min over the seeds)")
    chosen = [r.get("recency", {}).get("chosen") for r in runs]
    print(f"  recency prior's weight chosen on validation, per seed: {chosen}")
    result["ml-100k"] = {
        "global_mean": base["global_mean"]["test"],
        "popularity": base["popularity"]["test"],
        "ease": reference,
        "seed_network": seed_net["test"],
        "previous_default_runs": [r["test"] for r in previous],
        "default_mean": ours,
        "default_spread": spread,
        "default_runs": [r["test"] for r in runs],
        "default_train_seconds": [r["train_seconds"] for r in runs],
        "recency_chosen": [r.get("recency", {}).get("chosen") for r in runs],
        "default_rank_heads": [r["rank_head"] for r in runs],
    }

    if not args.skip_folds:
        names = ["user_id", "movie_id", "rating", "timestamp"]
        fold_rmse = []
        for k in range(1, 6):
            base_df, test_df = (
                pd.read_csv(args.data_dir / f"ml-100k/u{k}.{suffix}", sep="\t", names=names)
                for suffix in ("base", "test")
            )
            fold = split_given_test(base_df, test_df, seed=42)
            config = TrainConfig.for_arch("hybrid", quiet=True)
            fold_rmse.append(train_on_split(config, data, fold)[2]["test"]["rmse"])
        print(
            f"\nml-100k u1-u5 folds, default: RMSE {np.mean(fold_rmse):.4f} mean "
            f"({', '.join(f'{v:.4f}' for v in fold_rmse)})"
        )
        result["ml-100k_u1_u5"] = {"rmse_mean": float(np.mean(fold_rmse)), "rmse": fold_rmse}

    if not args.skip_small:
        small = load_movielens(args.data_dir / "ml-latest-small")
        small_split = split_data(small, "random", seed=42)
        _, _, m = train_on_split(TrainConfig.for_arch("hybrid", quiet=True), small, small_split)
        small_ease = ease(small_split)
        print(
            f"\nml-latest-small, same split procedure, default: test RMSE "
            f"{m['test']['rmse']:.4f}, NDCG@10 {m['test']['ndcg@10']:.4f} "
            f"(popularity {m['baselines']['popularity']['test']['ndcg@10']:.4f}, EASE "
            f"{small_ease['train']['ndcg@10']:.4f} fit on train, "
            f"{small_ease['train+val']['ndcg@10']:.4f} on train + val); recency prior's "
            f"weight chosen: {m.get('recency', {}).get('chosen')}"
        )
        result["ml-latest-small"] = {
            "test": m["test"],
            "baselines": m["baselines"],
            "ease": small_ease,
            "rank_head": m["rank_head"],
            "rank_mix": m["rank_mix"],
            "recency": m.get("recency"),
        }

    result["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")


def rank_by(task, scores: np.ndarray) -> dict[str, float]:
    """Ranking metrics of one score per movie, the same for every user."""
    found = ranking_metrics_many(task, lambda rows: [np.tile(scores, (len(rows), 1))], 1)[0]
    return {c: found[c] for c in ("precision@10", "recall@10", "ndcg@10")}


def time_split_report(args: argparse.Namespace) -> None:
    """The table of a time-based split, on ml-100k and (unless skipped) ml-latest-small."""
    result: dict = {"split": args.split}
    started = time.perf_counter()
    names = ["ml-100k"] + ([] if args.skip_small else ["ml-latest-small"])
    for name in names:
        data = load_movielens(args.data_dir / name)
        train_rows, val_rows, _ = split_rows(data, args.split)
        split = split_data(data, args.split)
        n_movies = split.vocab.n_movies
        known = known_at_test(split)
        task = ranking_task(split, "test", known=known)
        # the baselines know train + validation, as the default model (refit on both) does
        seen = np.concatenate([split.train.movie_idx, split.val.movie_idx])
        times = data.ratings["timestamp"].to_numpy()[np.concatenate([train_rows, val_rows])]
        start = times.max() - RECENT_SHARE * (times.max() - times.min())
        popular = np.bincount(seen, minlength=n_movies).astype(np.float64)
        recent = np.bincount(seen[times >= start], minlength=n_movies).astype(np.float64)
        recent += popular * 1e-9  # ties (movies not rated recently) by all-time popularity
        reference = ease(split)
        runs = []
        for seed in SEEDS:
            config = TrainConfig.for_arch("hybrid", seed=seed, split=args.split, quiet=True)
            runs.append(train_on_split(config, data, split)[2])
        ours = {c: float(np.mean([r["test"][c] for r in runs])) for c in COLUMNS}
        spread = {
            c: float(np.max([r["test"][c] for r in runs]) - np.min([r["test"][c] for r in runs]))
            for c in COLUMNS
        }
        rows = [
            row("global mean", runs[0]["baselines"]["global_mean"]["test"]),
            row("popularity (train + val)", rank_by(task, popular)),
            row(f"recent popularity (newest {RECENT_SHARE:.0%})", rank_by(task, recent)),
            row(f"EASE, train (lambda {reference['lambda']:g} on val)", reference["train"]),
            row("EASE, train + val (same lambda)", reference["train+val"]),
            row(f"ours, default (mean of seeds {','.join(map(str, SEEDS))})", ours, spread),
        ]
        protocol = runs[0]["ranking_protocol"]
        print_table(
            f"{name}, --split {args.split} ({len(split.train)} / {len(split.val)} / "
            f"{len(split.test)}), test part: {protocol['users_evaluated']} users ranked of "
            f"{protocol['users_with_relevant']} with a relevant movie, "
            f"{runs[0]['test']['cold_start_share']:.1%} of test pairs cold",
            rows,
        )
        chosen = [r.get("recency", {}).get("chosen") for r in runs]
        print(f"  recency prior's weight chosen on validation, per seed: {chosen}")
        result[name] = {
            "popularity": rank_by(task, popular),
            "recent_popularity": rank_by(task, recent),
            "ease": reference,
            "default_mean": ours,
            "default_spread": spread,
            "default_runs": [r["test"] for r in runs],
            "recency_chosen": [r.get("recency", {}).get("chosen") for r in runs],
            "ranking_protocol": protocol,
            "split": runs[0]["split"],
        }
    result["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
