"""Catalog mode at scale: the local engine vs the Ray engine, then a cluster projection.

    python bench/scale.py [--sample 2000] [--top-k 10] [--cores-per-node 16]
                          [--nodes 1 10 100] [--repeat 1]

The model is synthetic: 1,000,000 users x 20,000 movies with random weights, built with
onnx.helper (no torch). It has rec-export's I/O and the same family: embeddings, biases
and a small MLP, plus a ranking head::

    x      = P[u] * Q[m]                                    (32-dim tables, elementwise)
    rating = clip(b + bu[u] + bm[m] + sum(x) + w2 . relu(W1 x + b1), 1, 5)   W1: 32x32
    rank   = <R[u], S[m]> + c[m] + 0.5 * rating             (8-dim ranking head)

The model has no catalog.onnx (the catalog graph's contract is untouched by it), so
catalog mode here scores every pair through model.onnx: this measures the engines, not
the catalog graph (bench/catalog_scale.py measures that, at MovieLens-25M size).

The script measures catalog mode for a random sample of users (scores = sample x 20,000)
on this machine:

* the local engine, with ``--threads`` set to every CPU;
* the Ray engine on a local Ray instance, one actor per CPU with one thread each.
  ``ray.init`` and the first Ray Data job of the process are timed apart.

For each engine it also times a job of 2 users per CPU. That is the fixed cost: loading
the 1M-user mapping and the model, and for Ray, starting the actors, which each load
them too. The per-core rate is (sample - tiny) scores / (time - tiny time) / threads
for the local engine. For Ray it is scores / the actors' busy seconds, which the engine
reports in its manifest. Both outputs must be identical. The script reports scores/s end
to end and per core, and the overhead ratio (Ray's time / local time) for each.

From the Ray per-core rate, it then PROJECTS the wall time for all 1,000,000 users on N
nodes (N = 1, 10, 100). The projection assumes linear scaling and a shared filesystem;
it is not a measurement. Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import OPSET, RESULTS, Timer, print_table, save_synthetic

from movierec.serve_batch import contract

N_USERS, N_MOVIES, DIM, HIDDEN, RANK_DIM = 1_000_000, 20_000, 32, 32, 8
ARCH = {
    "name": "mf-mlp",
    "users": N_USERS,
    "movies": N_MOVIES,
    "embedding": DIM,
    "hidden": HIDDEN,
    "rank_factors": RANK_DIM,
}


def build_scale_artifacts(folder: Path, seed: int = 0) -> Path:
    """model.onnx + id_mapping.json of the 1M x 20k model (reused when already built)."""
    from onnx import TensorProto, helper, numpy_helper

    stamp = folder / "arch.json"
    if stamp.exists() and json.loads(stamp.read_text()) == ARCH:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def normal(scale: float, *shape: int) -> np.ndarray:
        return rng.normal(0, scale, shape).astype(np.float32)

    inits = {
        "P": normal(0.3, N_USERS, DIM),
        "Q": normal(0.3, N_MOVIES, DIM),
        "bu": normal(0.3, N_USERS),
        "bm": normal(0.3, N_MOVIES),
        "W1": normal(np.sqrt(2.0 / DIM), DIM, HIDDEN),
        "b1": normal(0.01, HIDDEN),
        "w2": normal(0.1, HIDDEN, 1),
        "R": normal(0.3, N_USERS, RANK_DIM),
        "S": normal(0.3, N_MOVIES, RANK_DIM),
        "c": normal(0.1, N_MOVIES),
        "bias": np.array(3.5, np.float32),
        "mix": np.array(0.5, np.float32),
        "rmin": np.array(1.0, np.float32),
        "rmax": np.array(5.0, np.float32),
        "axis1": np.array([1], np.int64),
    }
    u, m = contract.INPUT_USER, contract.INPUT_MOVIE
    node = helper.make_node
    nodes = [
        node("Gather", ["P", u], ["pu"], axis=0),
        node("Gather", ["Q", m], ["qm"], axis=0),
        node("Mul", ["pu", "qm"], ["x"]),
        node("ReduceSum", ["x", "axis1"], ["dot"], keepdims=0),
        node("MatMul", ["x", "W1"], ["h0"]),
        node("Add", ["h0", "b1"], ["h1"]),
        node("Relu", ["h1"], ["h"]),
        node("MatMul", ["h", "w2"], ["mlp2"]),
        node("Squeeze", ["mlp2", "axis1"], ["mlp"]),
        node("Gather", ["bu", u], ["ub"], axis=0),
        node("Gather", ["bm", m], ["mb"], axis=0),
        node("Add", ["bias", "ub"], ["s1"]),
        node("Add", ["s1", "mb"], ["s2"]),
        node("Add", ["s2", "dot"], ["s3"]),
        node("Add", ["s3", "mlp"], ["raw"]),
        node("Clip", ["raw", "rmin", "rmax"], [contract.OUTPUT_RATING]),
        node("Gather", ["R", u], ["ru"], axis=0),
        node("Gather", ["S", m], ["sm"], axis=0),
        node("Mul", ["ru", "sm"], ["rprod"]),
        node("ReduceSum", ["rprod", "axis1"], ["rdot"], keepdims=0),
        node("Gather", ["c", m], ["cm"], axis=0),
        node("Add", ["rdot", "cm"], ["r1"]),
        node("Mul", ["mix", contract.OUTPUT_RATING], ["mixed"]),
        node("Add", ["r1", "mixed"], [contract.OUTPUT_RANK]),
    ]
    batch = [contract.BATCH_AXIS]
    graph = helper.make_graph(
        nodes,
        "scale_mf_mlp",
        [
            helper.make_tensor_value_info(u, TensorProto.INT64, batch),
            helper.make_tensor_value_info(m, TensorProto.INT64, batch),
        ],
        [
            helper.make_tensor_value_info(contract.OUTPUT_RATING, TensorProto.FLOAT, batch),
            helper.make_tensor_value_info(contract.OUTPUT_RANK, TensorProto.FLOAT, batch),
        ],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8

    save_synthetic(folder, model, N_USERS, N_MOVIES, ARCH, rng, check=False)
    stamp.write_text(json.dumps(ARCH))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=2000, help="users scored per engine")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=65536, help="pairs per ORT call")
    parser.add_argument("--cores-per-node", type=int, default=16, help="for the projection")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each engine; best kept")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()

    from movierec.serve_batch import ScoreConfig, score_catalog
    from movierec.serve_batch._manifest import manifest_path

    cpus = os.cpu_count() or 1
    RESULTS.mkdir(parents=True, exist_ok=True)
    with Timer() as build:
        artifacts = build_scale_artifacts(RESULTS / "scale_artifacts")
    model_mb = (artifacts / contract.MODEL_FILE).stat().st_size / 2**20
    mapping_mb = (artifacts / contract.MAPPING_FILE).stat().st_size / 2**20
    print(
        f"artifacts: {artifacts} (model {model_mb:.0f} MiB, mapping {mapping_mb:.0f} MiB, "
        f"{build.seconds:.1f} s to build or check)"
    )
    rng = np.random.default_rng(7)
    sample = np.sort(rng.choice(np.arange(1, N_USERS + 1), args.sample, replace=False))
    users_path = RESULTS / "scale_users.parquet"
    pq.write_table(pa.table({"user_id": sample}), users_path)
    tiny_path = RESULTS / "scale_users_tiny.parquet"
    pq.write_table(pa.table({"user_id": sample[: 2 * cpus]}), tiny_path)
    pairs = args.sample * N_MOVIES

    common = dict(
        artifacts=artifacts,
        all_movies=True,
        top_k=args.top_k,
        batch_size=args.batch_size,
        quiet=True,
    )
    tiny_pairs = 2 * cpus * N_MOVIES

    def best_of(label: str, run, inp: Path, out: Path, repeat: int) -> float:
        times = []
        for _ in range(repeat):
            with Timer() as t:
                run(ScoreConfig.build(input=inp, output=out, **cfg[label]))
            times.append(t.seconds)
            print(f"  {label}, {pq.read_metadata(inp).num_rows:,} users: {t.seconds:.2f} s")
        runs[label].append(times)
        return min(times)

    cfg = {
        "local": dict(threads=cpus, **common),
        "ray": dict(engine="ray", actors=cpus, threads_per_actor=1, **common),
    }
    runs: dict[str, list] = {"local": [], "ray": []}
    local_out, ray_out = RESULTS / "scale_top_local.parquet", RESULTS / "scale_top_ray.parquet"
    tiny_out = RESULTS / "scale_top_tiny.parquet"
    local_tiny = best_of("local", score_catalog, tiny_path, tiny_out, 1)
    local_s = best_of("local", score_catalog, users_path, local_out, args.repeat)

    import ray

    with Timer() as start:
        ray.init(
            num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
    print(f"  ray.init (local instance, {cpus} CPUs): {start.seconds:.2f} s")
    try:
        # the first Ray Data job of a process also starts Ray Data's own actors
        first_job = best_of("ray", score_catalog, tiny_path, tiny_out, 1)
        ray_tiny = best_of("ray", score_catalog, tiny_path, tiny_out, 1)
        ray_s = best_of("ray", score_catalog, users_path, ray_out, args.repeat)
        engine = json.loads(manifest_path(ray_out).read_text())["engine"]
    finally:
        ray.shutdown()

    identical = pq.read_table(ray_out).equals(pq.read_table(local_out))
    local_rate, ray_rate = pairs / local_s, pairs / ray_s
    local_marginal = (pairs - tiny_pairs) / max(local_s - local_tiny, 1e-9)
    # the actors' own time in their calls: scoring only, free of start-up and idling
    per_core = pairs / engine["actor_busy_seconds"]
    local_per_core = local_marginal / cpus
    total_pairs = N_USERS * N_MOVIES
    fixed = start.seconds + ray_tiny
    projection = []
    for n in args.nodes:
        cores = n * args.cores_per_node
        scoring = total_pairs / (per_core * cores)
        projection.append(
            {
                "nodes": n,
                "cores": cores,
                "scoring_seconds": scoring,
                "fixed_seconds": fixed,
                "wall_seconds": fixed + scoring,
            }
        )
    result = {
        "model": {**ARCH, "model_mib": model_mb, "mapping_mib": mapping_mb},
        "sample_users": args.sample,
        "top_k": args.top_k,
        "scores": pairs,
        "batch_size": args.batch_size,
        "cpu_count": cpus,
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "ray_version": ray.__version__,
        "local": {
            "threads": cpus,
            "seconds": local_s,
            "scores_per_second": local_rate,
            "fixed_seconds": local_tiny,
            "marginal_scores_per_second": local_marginal,
            "marginal_scores_per_second_per_core": local_per_core,
            "runs_seconds": runs["local"],
        },
        "ray": {
            "workers": cpus,
            "threads_per_worker": 1,
            "blocks": engine["blocks"],
            "ray_init_seconds": start.seconds,
            "first_job_seconds": first_job,
            "fixed_seconds": ray_tiny,
            "seconds": ray_s,
            "scores_per_second": ray_rate,
            "actor_busy_seconds": engine["actor_busy_seconds"],
            "scores_per_second_per_core_busy": per_core,
            "runs_seconds": runs["ray"],
        },
        "identical_outputs": identical,
        "overhead_ratio_wall": ray_s / local_s,
        "overhead_ratio_per_core": local_per_core / per_core,
        "projection_note": (
            "PROJECTION, not a measurement: all users x all movies at the Ray actors' "
            "measured per-core rate (scores / actor busy seconds), linear in cores, plus "
            "this machine's Ray start "
            "and fixed job cost; ignores the driver reading 1M users and writing the output, "
            "shipping the artifacts to every node, stragglers and autoscaling"
        ),
        "projection_cores_per_node": args.cores_per_node,
        "projection": projection,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"\ncatalog mode, {args.sample:,} users x {N_MOVIES:,} movies = {pairs:,} scores, "
        f"K={args.top_k}, {cpus} CPUs (fixed cost = a job of {2 * cpus} users):"
    )
    print_table(
        [
            ("", f"{'end to end':>14}  {'fixed cost':>10}  {'per core':>14}"),
            (
                f"local engine ({cpus} threads)",
                f"{local_rate:>10,.0f} /s  {local_tiny:>8.1f} s  {local_per_core:>12,.0f} /s",
            ),
            (
                f"ray engine ({cpus} actors x 1 thread)",
                f"{ray_rate:>10,.0f} /s  {ray_tiny:>8.1f} s  {per_core:>12,.0f} /s",
            ),
            (
                "overhead ratio ray/local time",
                f"{ray_s / local_s:>12.2f} x  {'':>10}  {local_per_core / per_core:>12.2f} x",
            ),
            ("ray.init; first Ray Data job", f"{start.seconds:.1f} s; {first_job:.1f} s"),
            ("outputs identical", str(identical)),
        ]
    )
    print(
        "  (per core: local = (scores - tiny job's) / (time - tiny job's) / threads; "
        "ray = scores / the actors' busy seconds)"
    )
    print(
        f"\nPROJECTION (not measured) for all {N_USERS:,} users x {N_MOVIES:,} movies, "
        f"{args.cores_per_node} cores per node, {per_core:,.0f} scores/s per core + "
        f"{fixed:.0f} s fixed:"
    )
    print_table(
        [
            (
                f"{p['nodes']:>3} node(s), {p['cores']:>5} cores",
                f"{p['wall_seconds']:>10,.0f} s  (= {p['wall_seconds'] / 60:,.1f} min)",
            )
            for p in projection
        ]
    )
    print(f"JSON: {args.out}")
    if not identical:
        sys.exit("the two engines' outputs differ")


if __name__ == "__main__":
    sys.exit(main())
