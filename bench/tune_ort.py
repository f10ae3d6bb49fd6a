"""onnxruntime settings for rec-score, measured: graph optimisation level, pairs per call,
threads, the session's first call, and int8 dynamic quantisation.

    python bench/tune_ort.py [--artifacts DIR] [--pairs 2000000] [--repeat 3]

Every setting scores the same in-memory embedding rows through ``Artifacts.predict_rows``
(the loop rec-score runs, without I/O); settings alternate within each repeat and the
best time of each is kept, so that a busy neighbour hurts all alike. Quantisation
(``onnxruntime.quantization.quantize_dynamic``, int8 weights) is kept only if it is at
least 10% faster and moves the ml-100k test-split RMSE by less than 0.001. Writes
bench/results/ort_tuning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, print_table
from _graphs import prepare_graphs

import movierec.serve_batch._session as session_mod
from movierec.serve_batch import contract, load_artifacts

RMSE_BUDGET = 1e-3
#: Quantisation must be this much faster to be worth it: run-to-run noise here is ~10%.
MIN_SPEEDUP = 1.10


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if "flags" in ln), [])
    return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")) or "vnni" in f)


def load(folder: Path, threads: int, parallelism: str, graph_opt: str = "all", run_rows=None):
    arts = load_artifacts(
        folder / contract.MODEL_FILE,
        folder / contract.MAPPING_FILE,
        threads=threads,
        graph_opt=graph_opt,
        use_catalog=False,
        parallelism=parallelism,
    )
    if run_rows:
        arts.run_rows = run_rows
    return arts


def time_rows(arts, users: np.ndarray, movies: np.ndarray, batch_size: int) -> float:
    """Seconds to score every row in record batches of ``batch_size``, as rec-score does."""
    arts.predict_rows(users[:4096], movies[:4096], batch_size)  # warm up
    start = time.perf_counter()
    for a in range(0, users.size, batch_size):
        arts.predict_rows(users[a : a + batch_size], movies[a : a + batch_size], batch_size)
    return time.perf_counter() - start


def sweep(configs: dict, users, movies, repeat: int, batch_size: int = 1 << 16) -> dict:
    """``{name: best pairs/s}``; ``configs`` maps a name to a loader of Artifacts."""
    loaded = {name: make() for name, make in configs.items()}
    best = {name: float("inf") for name in configs}
    for _ in range(repeat):
        for name, arts in loaded.items():
            best[name] = min(best[name], time_rows(arts, users, movies, batch_size))
    return {name: users.size / s for name, s in best.items()}


def quantize(folder: Path, out: Path) -> Path:
    """int8 dynamic quantisation of ``folder``'s model into ``out`` (mapping copied,
    metadata kept so that the scorer accepts it)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    src = onnx.load(str(folder / contract.MODEL_FILE))
    quantize_dynamic(src, out / contract.MODEL_FILE, weight_type=QuantType.QInt8)
    q = onnx.load(str(out / contract.MODEL_FILE))
    del q.metadata_props[:]
    q.metadata_props.extend(src.metadata_props)
    onnx.save(q, str(out / contract.MODEL_FILE))
    shutil.copy(folder / contract.MAPPING_FILE, out / contract.MAPPING_FILE)
    return out


def test_rmse(folder: Path, test_pairs: Path) -> float:
    import pyarrow.parquet as pq

    table = pq.read_table(test_pairs)
    arts = load_artifacts(folder / contract.MODEL_FILE, folder / contract.MAPPING_FILE)
    pred = arts.predict_ids(
        table.column("user_id").to_numpy(), table.column("movie_id").to_numpy(), "error"
    )
    truth = table.column("rating").to_numpy().astype(np.float64)
    return float(np.sqrt(np.mean((pred.ratings - truth) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=None, help="rec-train output folder")
    parser.add_argument("--pairs", type=int, default=2_000_000, help="pairs per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept")
    parser.add_argument("--out", type=Path, default=RESULTS / "ort_tuning.json")
    args = parser.parse_args()

    graphs = prepare_graphs(args.artifacts)
    folded, plain = graphs.folders["folded"], graphs.folders["plain"]
    cores = session_mod.available_cores()
    rng = np.random.default_rng(0)
    probe = load(folded, 1, "calls")
    users = rng.integers(0, len(probe.users), args.pairs)
    movies = rng.integers(0, len(probe.movies), args.pairs)
    default_rows = session_mod.RUN_ROWS
    rep = args.repeat
    result: dict = {
        "pairs": args.pairs,
        "repeat": rep,
        "cores": cores,
        "cpu_flags": cpu_flags(),
        "onnxruntime": __import__("onnxruntime").__version__,
        "python": platform.python_version(),
        "pairs_per_second": {},
    }
    rows: list[tuple[str, str]] = []

    def record(section: str, found: dict) -> None:
        result["pairs_per_second"][section] = found
        top = max(found.values())
        for name, rate in found.items():
            mark = "  <- best" if rate == top else ""
            rows.append((f"{section}: {name}", f"{rate:>12,.0f} pairs/s{mark}"))
        print(f"{section}: done", flush=True)

    # 1. graph optimisation level (folded graph, default threads and call size)
    record(
        "graph_opt",
        sweep(
            {g: (lambda g=g: load(folded, 0, "calls", g)) for g in ("disable", "basic", "all")},
            users,
            movies,
            rep,
        ),
    )
    # 2. pairs per onnxruntime call, one thread (the cache-size effect alone)
    sizes = (256, 512, 1024, 2048, 4096, 8192, 32768)
    record(
        "pairs_per_call (1 thread)",
        sweep(
            {str(n): (lambda n=n: load(folded, 1, "calls", run_rows=n)) for n in sizes},
            users,
            movies,
            rep,
        ),
    )
    # 2b. the same on every core, side by side (how rec-score runs)
    record(
        f"pairs_per_call ({cores} calls side by side)",
        sweep(
            {str(n): (lambda n=n: load(folded, 0, "calls", run_rows=n)) for n in sizes[1:5]},
            users,
            movies,
            rep,
        ),
    )
    # 3. how to use the cores: side-by-side single-threaded calls vs intra-op threads
    thread_cfgs = {"1 thread": lambda: load(folded, 1, "calls")}
    for n in sorted({2, cores}):
        thread_cfgs[f"{n} calls side by side, {default_rows} pairs each"] = lambda n=n: load(
            folded, n, "calls"
        )
        for size in (default_rows, 16384, 65536):
            thread_cfgs[f"{n} intra-op threads, {size} pairs per call"] = lambda n=n, size=size: (
                load(folded, n, "intra", run_rows=size)
            )
    record("threads", sweep(thread_cfgs, users, movies, rep))

    # 3b. the session's first call: rec-score warms each session with one full call,
    # because onnxruntime plans its memory for the first shape it runs
    def first_call_of(n: int):
        arts = load(folded, 0, "calls")
        zeros = np.zeros(n, dtype=np.int64)
        arts._session.run(arts._outputs, {contract.INPUT_USER: zeros, contract.INPUT_MOVIE: zeros})
        arts._warmed_rows = n  # the session has run; no warm-up call after this one
        return arts

    record(
        "first call of the session",
        sweep(
            {
                f"{default_rows} pairs (the warm-up)": lambda: first_call_of(default_rows),
                "1000 pairs (a small first CSV block)": lambda: first_call_of(1000),
                "1 pair": lambda: first_call_of(1),
            },
            users,
            movies,
            rep,
        ),
    )

    # 4. int8 dynamic quantisation, both graphs: speed and test RMSE
    test_pairs = graphs.artifacts / contract.TEST_PAIRS_FILE
    quant = {}
    for name, folder in (("folded", folded), ("plain", plain)):
        qfolder = quantize(folder, RESULTS / "graphs" / "default" / f"{name}-int8")
        speed = sweep(
            {
                "float32": lambda folder=folder: load(folder, 0, "calls"),
                "int8": lambda qfolder=qfolder: load(qfolder, 0, "calls"),
            },
            users,
            movies,
            rep,
        )
        rmse_f, rmse_q = test_rmse(folder, test_pairs), test_rmse(qfolder, test_pairs)
        keep = abs(rmse_q - rmse_f) < RMSE_BUDGET and speed["int8"] > MIN_SPEEDUP * speed["float32"]
        quant[name] = {
            "pairs_per_second": speed,
            "test_rmse": {"float32": rmse_f, "int8": rmse_q, "change": rmse_q - rmse_f},
            "kept": keep,
        }
        rows.append(
            (
                f"int8 {name}: speed x{speed['int8'] / speed['float32']:.2f}",
                f"test RMSE {rmse_f:.5f} -> {rmse_q:.5f} ({rmse_q - rmse_f:+.5f}); "
                f"{'kept' if keep else 'not kept'}",
            )
        )
    result["quantization"] = quant
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nonnxruntime tuning ({args.pairs:,} pairs, best of {rep}, {cores} cores, "
        f"CPU flags: {' '.join(result['cpu_flags'])}):"
    )
    print_table(rows)
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
