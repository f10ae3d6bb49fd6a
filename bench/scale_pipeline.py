"""The whole pipeline at growing data sizes: does each stage's cost grow with the data?

For each scale (MovieLens 25M = 1.0; data from ``bench/make_synthetic.py``, generated
once and reused), runs as separate processes, each with its wall time, CPU time and
peak RSS (``os.wait4``'s rusage of that very child):

  * ``rec-train --data DATA --artifacts A --quiet`` (the defaults),
  * ``rec-export --artifacts A --quiet``,
  * ``rec-score USERS OUT --all-movies --exclude RATINGS --artifacts A --quiet``
    (top-10 for every user, excluding every rating they gave),

then trains the reference model on the same split in this process (plain biased MF:
16 factors, L2 0.1 per occurrence, SparseAdam, 8 epochs; ``bench/_biased_mf.py``). It
prints one table with test RMSE against the generator's noise-free limit, and each
stage's growth exponent between consecutive scales (``log(t2/t1) / log(n2/n1)`` over
ratings: 1.0 is linear), and writes ``bench/results/scale_pipeline.json``.

    python bench/scale_pipeline.py [--scales 0.01 0.05 0.2] [--full] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import make_synthetic  # noqa: E402

RESULTS = REPO / "bench" / "results"
STAGES = ("train", "export", "score")


def run_stage(argv: list[str], log: Path) -> dict:
    """Run one command; its wall and CPU seconds, peak RSS and the load around it."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text()[-2000:]
        raise SystemExit(f"{' '.join(argv)} exited with {code}:\n{tail}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def prepare_data(work: Path, scale: float, seed: int) -> tuple[Path, dict]:
    """The data set of ``scale`` (reused when already generated with the same seed) and
    the scorer's inputs: every user, and every rating as the exclusion set."""
    folder = work / f"data-{scale:g}-seed{seed}"
    info_path = folder / "generator.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if info.get("scale") != scale or info.get("seed") != seed:
        info = make_synthetic.write(folder, scale, seed)
        print(f"  generated {folder} in {info['seconds']} s", flush=True)
    if not (folder / "ratings.parquet").is_file():
        table = pacsv.read_csv(folder / "ratings.csv")
        pq.write_table(
            pa.table({"user_id": table["userId"], "movie_id": table["movieId"]}),
            folder / "ratings.parquet",
        )
        users = pa.table({"user_id": pa.array(range(1, info["users"] + 1), pa.int64())})
        pq.write_table(users, folder / "users.parquet")
    return folder, info


def baseline(folder: Path, seed: int) -> dict:
    """Plain biased MF on rec-train's split (same seed, same rows)."""
    from bench._biased_mf import train_biased_mf
    from movierec.train.data import load_movielens
    from movierec.train.split import split_data

    data = load_movielens(folder)
    split = split_data(data, "random", seed=seed)
    return train_biased_mf(split, data.rating_scale)


def run_scale(work: Path, scale: float, seed: int, threads: int | None, mf: bool) -> dict:
    folder, info = prepare_data(work, scale, seed)
    arts = work / f"artifacts-{scale:g}"
    arts.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m"]
    train = [*py, "movierec.train.cli", "--data", str(folder), "--artifacts", str(arts), "-q"]
    if threads:
        train += ["--threads", str(threads)]
    score = [
        *py,
        "movierec.serve_batch",
        str(folder / "users.parquet"),
        str(arts / "recommendations.parquet"),
        "--all-movies",
        "--exclude",
        str(folder / "ratings.parquet"),
        "--artifacts",
        str(arts),
        "--top-k",
        "10",
        "--quiet",
    ]
    if threads:
        score += ["--threads", str(threads)]
    commands = {
        "train": train,
        "export": [*py, "movierec.export.cli", "--artifacts", str(arts), "--quiet"],
        "score": score,
    }
    result: dict = {"scale": scale, "data": {k: info[k] for k in ("users", "movies", "ratings")}}
    result["noise_free_rmse"] = info["noise_free_rmse"]
    for stage, argv in commands.items():
        print(f"  {stage}: {' '.join(argv[2:4])} ...", flush=True)
        result[stage] = run_stage(argv, arts / f"{stage}.log")
    metrics = json.loads((arts / "metrics.json").read_text())
    n_train = round(info["ratings"] * 0.7)
    result["train"].update(
        test_rmse=metrics["test"]["rmse"],
        epochs_run=metrics["epochs_run"],
        best_epoch=metrics["best_epoch"],
        train_seconds=metrics["train_seconds"],
        rows_per_s=round(n_train * metrics["epochs_run"] / metrics["train_seconds"]),
        batch_size=metrics["config"]["batch_size"],
        implicit=metrics["implicit_terms"]["used"],
        users_ranked=metrics["ranking_protocol"]["users_evaluated"],
    )
    pairs = info["users"] * info["movies"] - info["ratings"]
    result["score"]["candidate_pairs"] = pairs
    result["score"]["pairs_per_s"] = round(pairs / result["score"]["wall_s"])
    if mf:
        print("  baseline: biased MF on the same split ...", flush=True)
        result["baseline_mf"] = baseline(folder, seed=42)
    return result


def exponents(runs: list[dict]) -> list[dict]:
    """Growth exponent of each stage's wall time between consecutive scales."""
    out = []
    for a, b in zip(runs, runs[1:], strict=False):
        ratio = math.log(b["data"]["ratings"] / a["data"]["ratings"])
        out.append(
            {
                "from": a["scale"],
                "to": b["scale"],
                **{s: round(math.log(b[s]["wall_s"] / a[s]["wall_s"]) / ratio, 2) for s in STAGES},
                **{
                    f"{s}_cpu": round(math.log(b[s]["cpu_s"] / a[s]["cpu_s"]) / ratio, 2)
                    for s in STAGES
                },
            }
        )
    return out


def print_table(runs: list[dict], growth: list[dict]) -> None:
    header = [
        "scale",
        "ratings",
        "stage",
        "wall s",
        "cpu s",
        "peak RSS MiB",
        "rows/s",
        "note",
    ]
    rows = []
    for r in runs:
        t = r["train"]
        rmse = (
            f"test RMSE {t['test_rmse']:.4f} (limit {r['noise_free_rmse']:.4f}, gap "
            f"{t['test_rmse'] - r['noise_free_rmse']:.4f}); {t['epochs_run']} epochs, batch "
            f"{t['batch_size']}, implicit {'on' if t['implicit'] else 'off'}"
        )
        rows.append([r["scale"], r["data"]["ratings"], "train", t["wall_s"], t["cpu_s"]])
        rows[-1] += [t["peak_rss_mib"], f"{t['rows_per_s']} train rows/s", rmse]
        e = r["export"]
        rows.append(["", "", "export", e["wall_s"], e["cpu_s"], e["peak_rss_mib"], "", ""])
        s = r["score"]
        rows.append(["", "", "score", s["wall_s"], s["cpu_s"], s["peak_rss_mib"]])
        rows[-1] += [f"{s['pairs_per_s'] / 1e6:.2f}M pairs/s", f"{r['data']['users']} users"]
        if "baseline_mf" in r:
            b = r["baseline_mf"]
            rows.append(["", "", "biased MF", round(b["seconds"], 2), round(b["cpu_seconds"], 2)])
            rows[-1] += ["", "", f"test RMSE {b['test_rmse']:.4f} (in-process)"]
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    if growth:
        print("\n  growth exponent of wall (cpu) seconds over ratings, 1.0 = linear:")
        for g in growth:
            cells = ", ".join(f"{s} {g[s]} ({g[s + '_cpu']})" for s in STAGES)
            print(f"    {g['from']:g} -> {g['to']:g}: {cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    parser.add_argument("--full", action="store_true", help="also run scale 1.0 (25M ratings)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--threads", type=int, default=None, help="passed to rec-train/score")
    parser.add_argument("--no-baseline", action="store_true", help="skip the biased MF")
    parser.add_argument("--work", type=Path, default=RESULTS / "scale_pipeline")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale_pipeline.json")
    args = parser.parse_args(argv)
    scales = sorted(set(args.scales) | ({1.0} if args.full else set()))
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = []
    for scale in scales:
        print(f"scale {scale:g}", flush=True)
        runs.append(run_scale(args.work, scale, args.seed, args.threads, not args.no_baseline))
        growth = exponents(runs)
        payload = {
            "runs": runs,
            "growth": growth,
            "cpus": os.cpu_count(),
            "seconds": round(time.perf_counter() - started, 1),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")  # after every scale
    print()
    print_table(runs, growth)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
