"""The two ranking heads side by side at scale: ``rec-train`` with ``--rank-head item-item``
(the default) and ``--rank-head bpr`` (the default before issue 14) on the same
synthetic data, alternately, each a process of its own with wall time, CPU time and peak
RSS; test RMSE and NDCG@10 from each run's ``metrics.json``.

The data comes from ``bench/make_synthetic.py`` (MovieLens 25M's shape at ``--scale``),
generated once into ``bench/results/scale_pipeline`` and shared with
``bench/scale_pipeline.py``.

    python bench/rank_heads.py [--scale 0.2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.scale_pipeline import RESULTS, prepare_data, run_stage  # noqa: E402

HEADS = ("item-item", "bpr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--repeat", type=int, default=1, help="runs per head")
    parser.add_argument("--work", type=Path, default=RESULTS / "scale_pipeline")
    parser.add_argument("--out", type=Path, default=RESULTS / "rank_heads.json")
    args = parser.parse_args()
    folder, info = prepare_data(args.work, args.scale, args.seed)
    runs: dict[str, list[dict]] = {head: [] for head in HEADS}
    for attempt in range(args.repeat):
        for head in HEADS:
            arts = args.work / f"rank-head-{head}-{args.scale:g}"
            arts.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", "movierec.train.cli", "--data", str(folder)]
            argv += ["--artifacts", str(arts), "--rank-head", head, "-q"]
            print(f"  {head} (run {attempt + 1}) ...", flush=True)
            usage = run_stage(argv, arts / "train.log")
            metrics = json.loads((arts / "metrics.json").read_text())
            usage.update(
                rmse=metrics["test"]["rmse"],
                ndcg10=metrics["test"]["ndcg@10"],
                epochs=metrics["epochs_run"],
                fit_s=metrics["train_seconds"],
                users_ranked=metrics["ranking_protocol"]["users_evaluated"],
                rank_head=metrics.get("rank_head"),
            )
            runs[head].append(usage)
    print(
        f"\nscale {args.scale:g}: {info['ratings']:,} ratings, {info['users']:,} users, "
        f"{info['movies']:,} movies (best of {args.repeat})"
    )
    header = ("rank head", "wall s", "fit s", "CPU s", "peak RSS MiB", "epochs", "RMSE", "NDCG@10")
    print("  " + " | ".join(header))
    for head, found in runs.items():
        best = min(found, key=lambda r: r["wall_s"])
        cells = (head, best["wall_s"], best["fit_s"], best["cpu_s"], best["peak_rss_mib"])
        cells += (best["epochs"], f"{best['rmse']:.4f}", f"{best['ndcg10']:.4f}")
        print("  " + " | ".join(str(c) for c in cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"scale": args.scale, "data": info, "runs": runs}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
