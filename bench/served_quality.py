"""Model quality as served: the exported model through the ``rec-score`` command.

For each model seed, on the seed split (random_state=42, as ``bench/quality.py``):
train and write what ``rec-train`` writes, ``movierec.export.export`` into a temporary
folder, then the scorer's console script, as a cron job runs it:

* pairs: ``rec-score test_pairs.parquet OUT`` -> RMSE of ``predicted_rating`` against the
  test ratings;
* catalog: ``rec-score USERS TOPK --all-movies --exclude train_val_pairs.parquet --top-k 10``
  for every test user with a relevant movie -> precision, recall and NDCG@10 from the
  top-k table alone, under the pinned protocol of ``movierec.train.metrics`` (relevant:
  a test rating >= 4; candidates: every movie not rated in train or validation).

Printed beside what ``rec-train`` measured in PyTorch (``metrics.json``).

    python bench/served_quality.py [--data ../shared/data/ml-100k] [--seeds 42,43,44]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from movierec.export import ExportConfig, export  # noqa: E402
from movierec.serve_batch import contract  # noqa: E402
from movierec.train import TrainConfig  # noqa: E402
from movierec.train.data import load_movielens  # noqa: E402
from movierec.train.pipeline import train_and_write  # noqa: E402
from movierec.train.split import split_data  # noqa: E402


def topk_metrics(topk: pd.DataFrame, test: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """Precision, recall and NDCG at ``k`` of a top-k table against the test ratings."""
    relevant = test[test["rating"] >= 4.0]
    rel = relevant.groupby("user_id")["movie_id"].apply(set).to_dict()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    lists = topk.sort_values(["user_id", "rank"]).groupby("user_id")["movie_id"].apply(list)
    p = r = g = 0.0
    for user, movies in rel.items():
        top = lists.get(user, [])[:k]
        hits = np.array([m in movies for m in top], dtype=float)
        p += hits.sum() / k
        r += hits.sum() / len(movies)
        g += float((hits * discounts[: hits.size]).sum()) / discounts[: min(len(movies), k)].sum()
    n = len(rel)
    return {"precision@10": p / n, "recall@10": r / n, "ndcg@10": g / n, "users": n}


def rec_score(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["rec-score", *args, "--quiet"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ml-100k")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/served_quality.json")
    args = parser.parse_args()
    runs = []
    data = load_movielens(args.data)
    split = split_data(data, "random", seed=42)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in map(int, args.seeds.split(",")):
            art = Path(tmp) / f"seed{seed}"
            art.mkdir()
            config = TrainConfig(data=args.data, artifacts=art, seed=seed, quiet=True)
            result = train_and_write(config, data, split, art)
            export(ExportConfig(artifacts=art, quiet=True))
            test = pd.read_parquet(art / "test_pairs.parquet")
            pairs = (str(art / "test_pairs.parquet"), str(art / "scored.parquet"))
            pairs_s = rec_score(*pairs, "--artifacts", str(art))
            scored = pd.read_parquet(art / "scored.parquet")
            err = scored["predicted_rating"].to_numpy(np.float64) - scored["rating"].to_numpy()
            users = test.loc[test["rating"] >= 4.0, ["user_id"]].drop_duplicates()
            users.to_parquet(art / "users.parquet", index=False)
            catalog_s = rec_score(
                str(art / "users.parquet"),
                str(art / "topk.parquet"),
                "--all-movies",
                "--exclude",
                str(art / contract.TRAIN_VAL_PAIRS_FILE),
                "--top-k",
                "10",
                "--artifacts",
                str(art),
            )
            served = topk_metrics(pd.read_parquet(art / "topk.parquet"), test)
            served["rmse"] = float(np.sqrt(np.mean(err**2)))
            torch_side = {c: result.metrics["test"][c] for c in ("rmse", "ndcg@10")}
            runs.append(
                {
                    "seed": seed,
                    "served": served,
                    "pytorch": torch_side,
                    "pairs_seconds": pairs_s,
                    "catalog_seconds": catalog_s,
                }
            )
            print(
                f"seed {seed}: rec-score RMSE {served['rmse']:.4f} (PyTorch "
                f"{torch_side['rmse']:.4f}), NDCG@10 from the top-k table "
                f"{served['ndcg@10']:.4f} over {served['users']} users (PyTorch "
                f"{torch_side['ndcg@10']:.4f}); rec-score {pairs_s:.2f} s pairs, "
                f"{catalog_s:.2f} s catalog",
                flush=True,
            )
    mean = {c: float(np.mean([r["served"][c] for r in runs])) for c in ("rmse", "ndcg@10")}
    print(f"mean over seeds: rec-score RMSE {mean['rmse']:.4f}, NDCG@10 {mean['ndcg@10']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "mean": mean}, indent=2) + "\n")


if __name__ == "__main__":
    main()
