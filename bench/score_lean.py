"""Start-up cost of ``rec-score`` on a small input: wall time, peak RSS, import time, pandas.

    python bench/score_lean.py --artifacts DIR [--baseline-src DIR] [--python PY] [--repeat 5]

Runs ``python -m movierec.serve_batch`` (the rec-score CLI) in a fresh subprocess on
three small jobs: 10,000 pairs Parquet -> Parquet, the same pairs CSV -> CSV with
``--top-k 10``, and catalog mode for 100 users. Each variant runs every job --repeat
times, round-robin with the other variants so that load on a shared machine hits all
of them alike; the table gives the best wall time and the median peak RSS (from GNU
``/usr/bin/time``). One extra run per job under ``python -X importtime`` gives the
seconds spent importing modules and whether pandas was imported (and what it cost).

Variants: ``current`` (this interpreter and installation); ``baseline`` with
--baseline-src DIR, a folder holding ``movierec/serve_batch`` of another version put
first on PYTHONPATH (``git archive main serve_batch | tar -x -C DIR/movierec``); and
``python:PY`` for each --python, another environment's interpreter (e.g. one with the
base dependencies at their floors). Writes bench/results/score_lean.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from _common import REPO, RESULTS, print_table, read_mapping_ids

MIB = 1 << 20
TIME = "/usr/bin/time"  # GNU time: -f %M prints the child's peak RSS in KiB


def write_inputs(folder: Path, artifacts: Path, pairs: int, users: int) -> dict[str, list[str]]:
    """The three jobs' rec-score arguments, with their input files written into ``folder``."""
    user_ids, movie_ids = read_mapping_ids(artifacts)
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "user_id": rng.choice(user_ids, pairs).astype(np.int64),
            "movie_id": rng.choice(movie_ids, pairs).astype(np.int64),
        }
    )
    pq.write_table(table, folder / "pairs.parquet")
    pacsv.write_csv(table, folder / "pairs.csv")
    pq.write_table(pa.table({"user_id": user_ids[:users]}), folder / "users.parquet")
    common = ["--artifacts", str(artifacts), "--quiet"]
    return {
        "pairs parquet->parquet": [str(folder / "pairs.parquet"), str(folder / "out.parquet")],
        "pairs csv->csv --top-k 10": [
            str(folder / "pairs.csv"),
            str(folder / "out.csv"),
            "--top-k",
            "10",
        ],
        "catalog --top-k 10": [
            str(folder / "users.parquet"),
            str(folder / "top.parquet"),
            "--all-movies",
            "--top-k",
            "10",
        ],
    } | {"_common": common}


def run_child(python: str, env: dict[str, str], args: list[str], importtime: bool) -> dict:
    """One rec-score run: seconds, peak RSS, and with ``importtime`` the import figures.

    Peak RSS comes from ``/usr/bin/time``: a child forked from this (big) process would
    report this process's RSS as its own high-water mark, which survives exec.
    """
    cmd = [python, *(["-X", "importtime"] if importtime else []), "-m", "movierec.serve_batch"]
    cmd += args
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        proc = subprocess.run(
            [TIME, "-f", "%M", "-o", rss.name, *cmd],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,  # a file, not a pipe: it cannot fill up and block
        )
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode()
        peak_kib = int(rss.read().split()[-1])
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    result = {"seconds": seconds, "peak_rss_bytes": peak_kib * 1024}
    if importtime:
        result |= parse_importtime(stderr)
    return result


def parse_importtime(stderr: str) -> dict:
    """Total import seconds (sum of every module's own time) and pandas' cumulative time."""
    total_us, pandas_us = 0, None
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line[12:].split("|"))
        if not self_us.isdigit():
            continue  # the header line
        total_us += int(self_us)
        if name == "pandas":
            pandas_us = int(cumulative_us)
    return {
        "import_seconds": total_us / 1e6,
        "pandas_imported": pandas_us is not None,
        "pandas_import_seconds": None if pandas_us is None else pandas_us / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="exported model folder")
    parser.add_argument("--baseline-src", type=Path, help="folder with movierec/serve_batch")
    parser.add_argument("--python", action="append", default=[], help="another interpreter")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS / "score_lean.json")
    args = parser.parse_args()

    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    variants: dict[str, tuple[str, dict[str, str]]] = {"current": (sys.executable, base_env)}
    if args.baseline_src:
        src = str(args.baseline_src.resolve())
        variants["baseline"] = (sys.executable, base_env | {"PYTHONPATH": src})
    for python in args.python:
        variants[f"python:{python}"] = (python, base_env)

    runs: dict[tuple[str, str], list[dict]] = {}
    imports: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = write_inputs(Path(tmp), args.artifacts, args.pairs, args.users)
        common = jobs.pop("_common")
        for job, job_args in jobs.items():
            for name, (python, env) in variants.items():
                imports[name, job] = run_child(python, env, job_args + common, importtime=True)
            for _ in range(args.repeat):
                for name, (python, env) in variants.items():
                    runs.setdefault((name, job), []).append(
                        run_child(python, env, job_args + common, importtime=False)
                    )

    results = []
    rows = []
    for (name, job), samples in runs.items():
        imp = imports[name, job]
        entry = {
            "variant": name,
            "job": job,
            "best_seconds": min(s["seconds"] for s in samples),
            "median_seconds": statistics.median(s["seconds"] for s in samples),
            "median_peak_rss_mib": statistics.median(s["peak_rss_bytes"] for s in samples) / MIB,
            "import_seconds": imp["import_seconds"],
            "pandas_imported": imp["pandas_imported"],
            "pandas_import_seconds": imp["pandas_import_seconds"],
            "samples": samples,
        }
        results.append(entry)
        pandas = (
            f"yes ({entry['pandas_import_seconds']:.2f} s)" if entry["pandas_imported"] else "no"
        )
        rows.append(
            (
                f"{job} | {name}",
                f"best {entry['best_seconds']:.2f} s, median {entry['median_seconds']:.2f} s | "
                f"peak RSS {entry['median_peak_rss_mib']:.0f} MiB | "
                f"imports {entry['import_seconds']:.2f} s | pandas {pandas}",
            )
        )
    print(f"rec-score on a small input, {args.repeat} runs per variant (shared machine):")
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"repeat": args.repeat, "pairs": args.pairs, "results": results}, indent=2)
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
