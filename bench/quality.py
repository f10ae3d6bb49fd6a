"""Model quality side by side on the same split of the real data.

One table: global mean, popularity, the seed notebook's network and our default
(mean and spread over three model seeds on the seed split), on ml-100k; the default's
mean RMSE over ml-100k's five u1-u5 folds; and the default on ml-latest-small.

    python bench/quality.py [--data-dir ../shared/data] [--skip-folds] [--skip-small]
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

from movierec.train.config import TrainConfig  # noqa: E402
from movierec.train.data import load_movielens  # noqa: E402
from movierec.train.pipeline import train_on_split  # noqa: E402
from movierec.train.split import split_given_test, split_ratings  # noqa: E402

SEEDS = (42, 43, 44)
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
    _, _, seed_net = train_on_split(TrainConfig.for_arch("seed", quiet=True), data, split)
    base = runs[0]["baselines"]
    ours = {c: float(np.mean([r["test"][c] for r in runs])) for c in COLUMNS}
    spread = {
        c: float(np.max([r["test"][c] for r in runs]) - np.min([r["test"][c] for r in runs]))
        for c in COLUMNS
    }
    rows = [
        row("global mean", base["global_mean"]["test"]),
        row("popularity (most rated first)", base["popularity"]["test"]),
        row("seed notebook network", seed_net["test"]),
        row(f"ours, default (mean of seeds {','.join(map(str, SEEDS))})", ours, spread),
    ]
    print_table("ml-100k, seed split (70/15/15, random_state=42), test part", rows)
    print("  (± is max - min over the seeds)")
    result["ml-100k"] = {
        "global_mean": base["global_mean"]["test"],
        "popularity": base["popularity"]["test"],
        "seed_network": seed_net["test"],
        "default_mean": ours,
        "default_spread": spread,
        "default_runs": [r["test"] for r in runs],
        "default_train_seconds": [r["train_seconds"] for r in runs],
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
        _, _, m = train_on_split(
            TrainConfig.for_arch("hybrid", quiet=True), small, split_ratings(small.ratings, seed=42)
        )
        print(
            f"\nml-latest-small, same split procedure, default: test RMSE "
            f"{m['test']['rmse']:.4f}, NDCG@10 {m['test']['ndcg@10']:.4f} "
            f"(popularity {m['baselines']['popularity']['test']['ndcg@10']:.4f})"
        )
        result["ml-latest-small"] = {"test": m["test"], "baselines": m["baselines"]}

    result["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
