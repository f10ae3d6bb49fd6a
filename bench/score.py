"""Scoring speed against the machine's limit, in one run: the numbers of issue 7.

    python bench/score.py [--artifacts DIR] [--seed-artifacts DIR] [--pairs 10000000]
                          [--repeat 3] [--wait-idle SECONDS]

``--artifacts``: a rec-train output folder (default bench/results/artifacts, trained with
the defaults on ../shared/data/ml-100k when it has no checkpoint). Its checkpoint is
exported twice with rec-export's code, as the folded graph (the default, plus its catalog
graph) and as the plain graph. ``--seed-artifacts`` adds a second model (e.g. ``rec-train
--arch seed``, the notebook's network) measured the same way.

Measured in this run, per model:
  * the roofline: numpy float32 matrix multiply (2048^3), GFLOP/s, best of 5;
  * operations per pair of each graph (``movierec.export.folding.count_flops_per_pair``);
  * bare onnxruntime: ``Artifacts.predict_rows`` over in-memory embedding rows (the loop
    rec-score runs, same settings, no ID mapping and no I/O), both graphs;
  * rec-score end to end: ``score_file`` on --pairs random known pairs, Parquet in ->
    Parquet out, both graphs (and the folded graph without overlapped reading and writing);
  * PyTorch eager ``predict_with_rank`` on the same checkpoint at its best batch size;
  * catalog mode: top-10 of every movie for every user, the users' rated (train and
    validation) pairs excluded, through the catalog graph and through the pairs graph.
Timed runs alternate within each of --repeat rounds and the best of each is kept (the
machine is shared; a busy neighbour then hurts every variant alike).
Writes bench/results/score.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, Timer, print_table, read_mapping_ids, write_pairs
from _graphs import graph_metadata, prepare_graphs

import movierec.serve_batch._pairs as pairs_mod
from movierec.serve_batch import ScoreConfig, contract, load_artifacts, score_catalog, score_file
from movierec.serve_batch._catalog import read_exclusions, score_blocks
from movierec.serve_batch._config import DEFAULT_BATCH_SIZE, DEFAULT_CATALOG_TOP_K
from movierec.serve_batch._session import RUN_ROWS, available_cores

BARS = {"pairs_per_second": 3_000_000, "folded_over_plain": 2.0, "catalog_seconds": 1.0}


def roofline(n: int = 2048, repeat: int = 5) -> float:
    """numpy float32 matrix multiply rate, GFLOP/s (best of ``repeat``)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def wait_for_idle(limit: float, busy_below: float = 0.15, calm: int = 3) -> bool:
    """Wait up to ``limit`` seconds until the CPUs were under ``busy_below`` busy for
    ``calm`` seconds in a row (other jobs on a shared machine); False if they never were."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
        return values[3] + values[4], sum(values)

    try:
        idle0, total0 = sample()
    except OSError:
        return True
    deadline, streak = time.monotonic() + limit, 0
    while time.monotonic() < deadline:
        time.sleep(1)
        idle1, total1 = sample()
        busy = 1 - (idle1 - idle0) / max(total1 - total0, 1)
        idle0, total0 = idle1, total1
        streak = streak + 1 if busy < busy_below else 0
        if streak >= calm:
            return True
    return False


def _timed(fn) -> float:
    with Timer() as t:
        fn()
    return t.seconds


class _Collect:
    """A stand-in for the top-k writer of catalog mode: counts rows."""

    rows = 0

    def write(self, table) -> None:
        self.rows += table.num_rows


def measure_model(name: str, folder: Path | None, args, roof: list[float]) -> dict:
    import torch

    from movierec.export.folding import count_flops_per_pair
    from movierec.train.checkpoint import load_checkpoint

    graphs = prepare_graphs(folder, tag=name)
    folded = graphs.folders["folded"]
    ckpt = load_checkpoint(graphs.artifacts / contract.CHECKPOINT_FILE)
    flops = {
        "folded": count_flops_per_pair(ckpt.model, folded=True),
        "plain": count_flops_per_pair(ckpt.model, folded=False),
    }
    users, movies = read_mapping_ids(folded)
    pairs_path = write_pairs(RESULTS / f"pairs_{args.pairs}.parquet", args.pairs, users, movies)
    rng = np.random.default_rng(2)
    user_rows = rng.integers(0, users.size, args.pairs)
    movie_rows = rng.integers(0, movies.size, args.pairs)
    arts = {
        g: load_artifacts(f / contract.MODEL_FILE, f / contract.MAPPING_FILE, use_catalog=False)
        for g, f in graphs.folders.items()
    }
    for a in arts.values():
        a.predict_rows(user_rows[:4096], movie_rows[:4096], DEFAULT_BATCH_SIZE)

    def bare(graph: str) -> float:
        return _timed(lambda: arts[graph].predict_rows(user_rows, movie_rows, DEFAULT_BATCH_SIZE))

    def e2e(graph: str, overlap: bool = True) -> float:
        cfg = ScoreConfig(
            input=pairs_path,
            output=RESULTS / "scored.parquet",
            artifacts=graphs.folders[graph],
            quiet=True,
        )
        pairs_mod.OVERLAP_IO = overlap
        try:
            with Timer() as t:
                manifest = score_file(cfg)
        finally:
            pairs_mod.OVERLAP_IO = True
        assert manifest["rows_written"] == args.pairs
        return t.seconds

    # catalog mode inputs: every user, their rated pairs excluded
    seen = graphs.artifacts / contract.SEEN_PAIRS_FILE
    cat_users = RESULTS / f"catalog_users_{name}.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({contract.USER_COL: users}), cat_users)
    k = DEFAULT_CATALOG_TOP_K
    ccfg = ScoreConfig(
        input=cat_users,
        output=RESULTS / f"catalog_top_{name}.parquet",
        artifacts=folded,
        all_movies=True,
        top_k=k,
        exclude=seen if seen.is_file() else None,
        quiet=True,
    )
    cat_arts = {
        "catalog graph": load_artifacts(
            folded / contract.MODEL_FILE, folded / contract.MAPPING_FILE
        ),
        "pairs graph": arts["folded"],
    }
    excluded = None
    if ccfg.exclude is not None:
        excluded, _ = read_exclusions(ccfg, "parquet", cat_arts["catalog graph"], users)

    def catalog_scoring(way: str) -> float:
        sink = _Collect()
        t = _timed(lambda: score_blocks(ccfg, cat_arts[way], users, excluded, k, sink))
        assert sink.rows == users.size * k
        return t

    def catalog_e2e() -> float:
        return _timed(lambda: score_catalog(ccfg))

    runs = {
        "bare folded": lambda: bare("folded"),
        "bare plain": lambda: bare("plain"),
        "e2e folded": lambda: e2e("folded"),
        "e2e plain": lambda: e2e("plain"),
        "e2e folded, I/O not overlapped": lambda: e2e("folded", overlap=False),
        "catalog scoring, catalog graph": lambda: catalog_scoring("catalog graph"),
        "catalog scoring, pairs graph": lambda: catalog_scoring("pairs graph"),
        "catalog end to end": catalog_e2e,
    }
    times: dict[str, list[float]] = {key: [] for key in runs}
    for r in range(args.repeat):
        if args.wait_idle:
            calm = wait_for_idle(args.wait_idle)
            print(f"  [{name}] round {r + 1}: CPUs {'idle' if calm else 'still busy'}", flush=True)
        roof.append(roofline())
        for key, run in runs.items():
            times[key].append(run())
        print(
            f"  [{name}] round {r + 1}/{args.repeat}: "
            + ", ".join(f"{key} {v[-1]:.2f}s" for key, v in times.items()),
            flush=True,
        )
    best = {key: min(v) for key, v in times.items()}

    # PyTorch eager, the reference a user would otherwise write: its best batch size
    model = ckpt.model.eval()
    n_eager = min(args.pairs, 2_000_000)
    tu, tm = torch.from_numpy(user_rows[:n_eager]), torch.from_numpy(movie_rows[:n_eager])
    eager = {}
    with torch.no_grad():
        model.predict_with_rank(tu[:1024], tm[:1024])
        for bs in (4096, 16384, 65536, 262144, 1 << 20):

            def loop(bs=bs):
                for a in range(0, n_eager, bs):
                    model.predict_with_rank(tu[a : a + bs], tm[a : a + bs])

            eager[bs] = n_eager / min(_timed(loop) for _ in range(args.repeat))
    eager_bs = max(eager, key=eager.get)

    rate = {key: args.pairs / s for key, s in best.items() if not key.startswith("catalog")}
    return {
        "artifacts": str(graphs.artifacts),
        "arch": graph_metadata(folded)["arch"],
        "flops_per_pair": flops,
        "pairs": args.pairs,
        "seconds": best,
        "all_seconds": times,
        "pairs_per_second": rate,
        "pytorch_eager": {
            "pairs": n_eager,
            "torch_threads": torch.get_num_threads(),
            "pairs_per_second_by_batch": {str(b): v for b, v in eager.items()},
            "best_batch": eager_bs,
            "pairs_per_second": eager[eager_bs],
        },
        "catalog": {
            "users": int(users.size),
            "movies": int(movies.size),
            "k": k,
            "excluded_pairs": 0 if excluded is None else int(excluded.size),
            "scores": int(users.size * movies.size),
        },
    }


def summarize(name: str, m: dict, roof: float) -> list[tuple[str, str]]:
    r, f, s = m["pairs_per_second"], m["flops_per_pair"], m["seconds"]
    eager = m["pytorch_eager"]
    e2e = r["e2e folded"]
    gflops = e2e * f["folded"] / 1e9
    rows = [
        (
            f"[{name}] {json.dumps(m['arch'].get('arch'))}, ops/pair folded | plain",
            f"{f['folded']:,} | {f['plain']:,} FLOP",
        ),
        (
            f"[{name}] bare onnxruntime, folded | plain",
            f"{r['bare folded']:>11,.0f} | {r['bare plain']:,.0f} pairs/s",
        ),
        (
            f"[{name}] rec-score Parquet->Parquet, folded | plain",
            f"{e2e:>11,.0f} | {r['e2e plain']:,.0f} pairs/s  ({m['pairs']:,} pairs)",
        ),
        (
            f"[{name}] ... folded, reading/writing not overlapped",
            f"{r['e2e folded, I/O not overlapped']:>11,.0f} pairs/s",
        ),
        (
            f"[{name}] folded / plain, end to end (bar >= 2x)",
            f"{e2e / r['e2e plain']:>11.2f}x  (bare {r['bare folded'] / r['bare plain']:.2f}x)",
        ),
        (
            f"[{name}] pairs bar: >= 3,000,000 pairs/s end to end",
            f"{'met' if e2e >= BARS['pairs_per_second'] else 'NOT met'}"
            f" ({e2e / BARS['pairs_per_second']:.0%} of it)",
        ),
        (
            f"[{name}] PyTorch eager (batch {eager['best_batch']})",
            f"{eager['pairs_per_second']:>11,.0f} pairs/s; rec-score is "
            f"{e2e / eager['pairs_per_second']:.1f}x it",
        ),
        (
            f"[{name}] rec-score end to end vs roofline",
            f"{gflops:>11.2f} GFLOP/s = {gflops / roof:.1%} of {roof:.1f} GFLOP/s",
        ),
        (
            f"[{name}] catalog top-{m['catalog']['k']}, {m['catalog']['users']} users x "
            f"{m['catalog']['movies']} movies",
            f"{s['catalog scoring, catalog graph']:>11.3f} s scoring (pairs graph "
            f"{s['catalog scoring, pairs graph']:.3f} s; end to end "
            f"{s['catalog end to end']:.3f} s); bar < 1 s "
            f"{'met' if s['catalog scoring, catalog graph'] < 1 else 'NOT met'}",
        ),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=None, help="rec-train output folder")
    parser.add_argument(
        "--seed-artifacts",
        type=Path,
        default=None,
        help="a second rec-train folder (e.g. --arch seed) measured alike",
    )
    parser.add_argument("--pairs", type=int, default=10_000_000, help="rows of the pairs file")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each round, wait up to this long for the CPUs to go idle (shared "
        "machines); 0: do not wait",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "score.json")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    import onnxruntime as ort

    roof: list[float] = []
    models = {"default": measure_model("default", args.artifacts, args, roof)}
    if args.seed_artifacts:
        models["seed"] = measure_model("seed", args.seed_artifacts, args, roof)
    best_roof = max(roof)
    result = {
        "cores": available_cores(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "settings": {
            "batch_size": DEFAULT_BATCH_SIZE,
            "pairs_per_onnxruntime_call": RUN_ROWS,
            "threads": "all cores, one single-threaded onnxruntime call each",
        },
        "repeat": args.repeat,
        "wait_idle_seconds": args.wait_idle,
        "roofline_gflops": best_roof,
        "roofline_all": roof,
        "models": models,
        "bars": BARS,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nScoring speed (best of {args.repeat}; {result['cores']} cores; roofline = numpy "
        f"float32 matmul {best_roof:.1f} GFLOP/s, measured in this run):"
    )
    rows = []
    for name, m in models.items():
        rows += summarize(name, m, best_roof)
    print_table(rows)
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
