"""Model quality side by side on the same split of the real data.

One table: global mean, popularity, EASE (fit on the training part and on train +
validation, lambda chosen on validation), the seed notebook's network, the previous
default (BPR ranking head, no weight average, no refit on validation) and our default
(mean and spread over three model seeds on the seed split), on ml-100k; the default's
mean RMSE over ml-100k's five u1-u5 folds; and the default on ml-latest-small (with
popularity and EASE beside it).

    python bench/quality.py [--data-dir ../shared/data] [--skip-folds] [--skip-small]\
                            [--skip-previous]
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

from bench._ease import ease  # noqa: E402
from movierec.train.config import TrainConfig  # noqa: E402
from movierec.train.data import load_movielens  # noqa: E402
from movierec.train.pipeline import train_on_split  # noqa: E402
from movierec.train.split import split_given_test, split_ratings  # noqa: E402

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
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    result: dict = {}
    started = time.perf_counter()

    data = load_movielens(args.data_dir / "ml-100k")
    split = split_ratings(data.ratings, seed=42)
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
        small_split = split_ratings(small.ratings, seed=42)
        _, _, m = train_on_split(TrainConfig.for_arch("hybrid", quiet=True), small, small_split)
        small_ease = ease(small_split)
        print(
            f"\nml-latest-small, same split procedure, default: test RMSE "
            f"{m['test']['rmse']:.4f}, NDCG@10 {m['test']['ndcg@10']:.4f} "
            f"(popularity {m['baselines']['popularity']['test']['ndcg@10']:.4f}, EASE "
            f"{small_ease['train']['ndcg@10']:.4f} fit on train, "
            f"{small_ease['train+val']['ndcg@10']:.4f} on train + val)"
        )
        result["ml-latest-small"] = {
            "test": m["test"],
            "baselines": m["baselines"],
            "ease": small_ease,
            "rank_head": m["rank_head"],
            "rank_mix": m["rank_mix"],
        }

    result["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
