"""Does fitting the item-item head beside the training pay on a busy 2-core machine?

``rec-train`` with ``--parallel-head`` (the head's SVDs and lambda grid on a thread of their
own while the network trains) and with ``--no-parallel-head`` (after it), each as a process
of its own, alone and beside a process that keeps one core busy (as other jobs on a shared
cron host do), rounds alternating; the best wall time of each.

    python bench/parallel_head.py --data /work/data/scale02 [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BUSY = "while True: pass"


def run(data: Path, parallel: bool, out: Path) -> dict:
    flag = "--parallel-head" if parallel else "--no-parallel-head"
    argv = [sys.executable, "-m", "movierec.train", "--data", str(data), "--artifacts", str(out)]
    argv += ["--quiet", flag]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode()[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "wall_s": time.perf_counter() - start,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_gib": usage.ru_maxrss / 2**20,
        "test_rmse": metrics["test"]["rmse"],
        "ndcg@10": metrics["test"]["ndcg@10"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for busy in (False, True):
            hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
            try:
                for parallel in (True, False):
                    name = f"{'parallel' if parallel else 'after'}, {'busy' if busy else 'alone'}"
                    out = Path(f"/tmp/parallel_head-{int(parallel)}{int(busy)}")
                    results.setdefault(name, []).append(run(args.data, parallel, out))
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    print(f"\nrec-train on {args.data}, best of {args.repeat}")
    print(
        f"{'head':<20} {'wall s':>8} {'CPU s':>8} {'peak GiB':>9} {'test RMSE':>10} {'NDCG@10':>8}"
    )
    for name, runs in results.items():
        best = min(runs, key=lambda r: r["wall_s"])
        print(
            f"{name:<20} {best['wall_s']:>8.1f} {best['cpu_s']:>8.1f} {best['peak_gib']:>9.2f} "
            f"{best['test_rmse']:>10.4f} {best['ndcg@10']:>8.4f}"
        )
    out = RESULTS / f"parallel_head-{args.data.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
