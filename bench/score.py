"""Throughput of rec-score against a bare onnxruntime loop, plus catalog-mode time.

    python bench/score.py [--pairs 10000000] [--batch-size 65536] [--threads 0]
                          [--artifacts DIR]   # a real export instead of the synthetic model

Measures in one run: (a) onnxruntime alone over in-memory int64 row arrays (same
session options, batch size and threads as rec-score); (b) ``score_file`` end to end,
Parquet in -> Parquet out (a and b alternate --repeat times, best of each kept);
the ratio b/a (target >= 50%); and (c) catalog mode for all
users x all movies with K=10. Writes bench/results/score.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
from _common import (
    RESULTS,
    Timer,
    build_synthetic_artifacts,
    print_table,
    read_mapping_ids,
    write_pairs,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000_000, help="rows of the pairs file")
    parser.add_argument("--batch-size", type=int, default=65536, help="rows per ORT call")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0=auto)")
    parser.add_argument("--artifacts", type=Path, default=None, help="real artifacts folder")
    parser.add_argument("--top-k", type=int, default=10, help="K of the catalog run")
    parser.add_argument(
        "--repeat", type=int, default=2, help="alternate (a) and (b) this often; keep the best"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "score.json")
    args = parser.parse_args()

    import onnxruntime as ort
    import pyarrow as pa
    import pyarrow.parquet as pq

    from serve_batch import ScoreConfig, contract, load_artifacts, score_catalog, score_file
    from serve_batch._session import PROVIDERS, build_session_options

    RESULTS.mkdir(parents=True, exist_ok=True)
    artifacts = args.artifacts or build_synthetic_artifacts(RESULTS / "synthetic_artifacts")
    users, movies = read_mapping_ids(artifacts)
    pairs_path = write_pairs(RESULTS / f"pairs_{args.pairs}.parquet", args.pairs, users, movies)
    print(f"artifacts: {artifacts}\npairs: {pairs_path} ({args.pairs:,} rows)")

    # (a) bare onnxruntime over in-memory embedding rows, same options
    session = ort.InferenceSession(
        str(artifacts / contract.MODEL_FILE),
        sess_options=build_session_options(args.threads, "all"),
        providers=PROVIDERS,
    )
    rng = np.random.default_rng(2)
    user_rows = rng.integers(0, users.size, args.pairs).astype(np.int64)
    movie_rows = rng.integers(0, movies.size, args.pairs).astype(np.int64)
    bs = args.batch_size
    # the same outputs rec-score asks for
    names = [
        o.name
        for o in session.get_outputs()
        if o.name in (contract.OUTPUT_RATING, contract.OUTPUT_RANK)
    ]
    session.run(names, {contract.INPUT_USER: user_rows[:bs], contract.INPUT_MOVIE: movie_rows[:bs]})

    def run_bare() -> float:
        with Timer() as t:
            for start in range(0, args.pairs, bs):
                session.run(
                    names,
                    {
                        contract.INPUT_USER: user_rows[start : start + bs],
                        contract.INPUT_MOVIE: movie_rows[start : start + bs],
                    },
                )
        return t.seconds

    # (b) end to end: Parquet in -> Parquet out through the library rec-score calls
    out = RESULTS / "scored.parquet"
    cfg = ScoreConfig(
        input=pairs_path,
        output=out,
        artifacts=artifacts,
        batch_size=bs,
        threads=args.threads,
        quiet=True,
    )

    def run_e2e() -> float:
        with Timer() as t:
            manifest = score_file(cfg)
        assert manifest["rows_written"] == args.pairs
        return t.seconds

    # alternate the two so that a noisy neighbour hurts both alike; keep each one's best
    bare_times, e2e_times = [], []
    for _ in range(args.repeat):
        bare_times.append(run_bare())
        e2e_times.append(run_e2e())
        print(f"  bare {bare_times[-1]:.2f} s, end-to-end {e2e_times[-1]:.2f} s")
    bare_s, e2e_s = min(bare_times), min(e2e_times)

    # (c) catalog mode: every user x every movie, top-K
    users_path = RESULTS / "catalog_users.parquet"
    pq.write_table(pa.table({"user_id": users}), users_path)
    ccfg = ScoreConfig(
        input=users_path,
        output=RESULTS / "catalog_top.parquet",
        artifacts=artifacts,
        all_movies=True,
        top_k=args.top_k,
        batch_size=bs,
        threads=args.threads,
        quiet=True,
    )
    with Timer() as cat:
        cat_manifest = score_catalog(ccfg)
    load = load_artifacts(artifacts / contract.MODEL_FILE, artifacts / contract.MAPPING_FILE)

    bare_rate = args.pairs / bare_s
    e2e_rate = args.pairs / e2e_s
    result = {
        "pairs": args.pairs,
        "batch_size": bs,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "artifacts": str(artifacts),
        "model_sha256": load.model_sha256,
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "repeat": args.repeat,
        "bare_onnxruntime": {
            "seconds": bare_s,
            "pairs_per_second": bare_rate,
            "all_seconds": bare_times,
        },
        "end_to_end_parquet": {
            "seconds": e2e_s,
            "pairs_per_second": e2e_rate,
            "all_seconds": e2e_times,
        },
        "ratio_end_to_end_over_bare": e2e_rate / bare_rate,
        "catalog": {
            "users": int(users.size),
            "movies": int(movies.size),
            "k": args.top_k,
            "pairs_scored": cat_manifest["pairs_scored"],
            "seconds": cat.seconds,
            "pairs_per_second": cat_manifest["pairs_scored"] / cat.seconds,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nrec-score throughput ({args.pairs:,} pairs, batch {bs}, threads {args.threads}):")
    print_table(
        [
            ("(a) bare onnxruntime loop", f"{bare_rate:>12,.0f} pairs/s  ({bare_s:.2f} s)"),
            (
                "(b) score_file Parquet->Parquet",
                f"{e2e_rate:>12,.0f} pairs/s  ({e2e_s:.2f} s)",
            ),
            ("ratio (b)/(a)", f"{e2e_rate / bare_rate:>12.1%}  (target >= 50%)"),
            (
                f"(c) catalog {users.size}x{movies.size}, K={args.top_k}",
                f"{cat.seconds:>12.2f} s  ({cat_manifest['pairs_scored']:,} pairs)",
            ),
        ]
    )
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
