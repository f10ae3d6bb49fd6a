"""Peak memory (RSS) of ``rec-score`` runs in a subprocess; target < 1 GiB.

    python bench/score_rss.py [--pairs 20000000] [--batch-size 65536] [--artifacts DIR]

Runs ``python -m movierec.serve_batch`` (the rec-score CLI) on a Parquet file of --pairs rows
and on one of a tenth the size (memory must not grow with the input), with and
without --top-k, and catalog mode (all users x all movies, K=10, with and without
--exclude). Peak RSS comes from ``os.wait4``'s rusage of each child. Writes
bench/results/score_rss.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from _common import (
    REPO,
    RESULTS,
    build_synthetic_artifacts,
    print_table,
    read_mapping_ids,
    write_pairs,
)

GIB = 1 << 30


def run_child(args: list[str]) -> dict:
    """Run ``python -m movierec.serve_batch ARGS``: its seconds and peak RSS (fails unless 0)."""
    cmd = [sys.executable, "-m", "movierec.serve_batch", *args]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: it cannot fill up and block
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        code = proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4
        if code != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{err.read().decode()}")
    return {"args": args, "seconds": seconds, "peak_rss_bytes": usage.ru_maxrss * 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000_000, help="rows of the big input")
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--artifacts", type=Path, default=None, help="real artifacts folder")
    parser.add_argument("--out", type=Path, default=RESULTS / "score_rss.json")
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    artifacts = args.artifacts or build_synthetic_artifacts(RESULTS / "synthetic_artifacts")
    users, movies = read_mapping_ids(artifacts)
    small_n = max(args.pairs // 10, 1)
    big = write_pairs(RESULTS / f"pairs_{args.pairs}.parquet", args.pairs, users, movies)
    small = write_pairs(RESULTS / f"pairs_{small_n}.parquet", small_n, users, movies)
    rated = write_pairs(RESULTS / "rated_100000.parquet", 100_000, users, movies, seed=7)
    users_path = RESULTS / "catalog_users.parquet"
    pq.write_table(pa.table({"user_id": users}), users_path)
    common = ["--artifacts", str(artifacts), "--quiet", "--batch-size", str(args.batch_size)]
    common += ["--threads", str(args.threads)]
    out = str(RESULTS / "rss_out.parquet")
    top = str(RESULTS / "rss_top.parquet")

    runs = {
        "imports only (--help)": ["--help"],
        f"pairs {small_n:,}": [str(small), out, *common],
        f"pairs {args.pairs:,}": [str(big), out, *common],
        f"pairs {args.pairs:,} --top-k 10": [str(big), out, "--top-k", "10", *common],
        f"catalog {users.size}x{movies.size} K=10": [
            str(users_path),
            top,
            "--all-movies",
            *common,
        ],
        f"catalog {users.size}x{movies.size} K=10 --exclude 100k": [
            str(users_path),
            top,
            "--all-movies",
            "--exclude",
            str(rated),
            *common,
        ],
    }
    results = {}
    for name, argv in runs.items():
        print(f"running {name} ...", flush=True)
        results[name] = run_child(argv)
        results[name]["peak_rss_mib"] = results[name]["peak_rss_bytes"] / (1 << 20)

    peak = max(r["peak_rss_bytes"] for r in results.values())
    summary = {
        "pairs": args.pairs,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "artifacts": str(artifacts),
        "target_bytes": GIB,
        "max_peak_rss_bytes": peak,
        "within_target": bool(peak < GIB),
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nrec-score peak RSS (target < 1 GiB; batch {args.batch_size}):")
    print_table(
        [
            (name, f"{r['peak_rss_mib']:>8.0f} MiB  {r['seconds']:>7.1f} s")
            for name, r in results.items()
        ]
    )
    growth = (
        results[f"pairs {args.pairs:,}"]["peak_rss_bytes"]
        - results[f"pairs {small_n:,}"]["peak_rss_bytes"]
    ) / (1 << 20)
    print(f"  growth from {small_n:,} to {args.pairs:,} rows: {growth:+.0f} MiB")
    print(f"JSON: {args.out}")
    if peak >= GIB:
        raise SystemExit(f"peak RSS {peak / GIB:.2f} GiB is over the 1 GiB target")


if __name__ == "__main__":
    sys.exit(main())
