"""Scoring speed against the machine's limit, in one run: the numbers of issue 7.

    python bench/score.py [--artifacts DIR] [--seed-artifacts DIR] [--pairs 10000000]
                          [--repeat 3] [--wait-idle SECONDS] [--against REF [--e2e-only]]

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
``--against REF`` adds the driver of the commit REF side by side (a ``git worktree`` of
REF under bench/results/, run through ``bench/_e2e_run.py`` with its own PYTHONPATH, and
this tree's driver the same way), the folded graph end to end, alternating within each
round; ``--e2e-only`` measures nothing else.
Timed runs alternate within each of --repeat rounds and the best of each is kept (the
machine is shared; a busy neighbour then hurts every variant alike).
Writes bench/results/score.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import REPO, RESULTS, Timer, print_table, read_mapping_ids, write_pairs
from _graphs import graph_metadata, prepare_graphs

from movierec.serve_batch import ScoreConfig, contract, load_artifacts, score_catalog, score_file
from movierec.serve_batch._catalog_job import read_exclusions
from movierec.serve_batch._config import DEFAULT_BATCH_SIZE, DEFAULT_CATALOG_TOP_K
from movierec.serve_batch._driver import Sink, catalog_spec, stream_catalog
from movierec.serve_batch._executors import LocalExecutor
from movierec.serve_batch._io import open_input
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


def against_tree(ref: str) -> tuple[str, Path]:
    """A ``git worktree`` of ``ref`` under bench/results/ and a folder whose ``movierec/``
    links to its stage folders (for PYTHONPATH); returns (commit, that folder)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    base = RESULTS / f"against-{commit[:12]}"
    tree = base / "tree"
    if not (tree / ".git").exists():
        base.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), commit],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    package = base / "path" / "movierec"
    package.mkdir(parents=True, exist_ok=True)
    for stage in ("serve_batch", "train", "export", "nightly", "db"):
        link = package / stage
        if (tree / stage).is_dir() and not link.exists():
            link.symlink_to(tree / stage)
    # a regular package, so that it wins over this checkout's installed ``movierec``
    # (an editable install puts the repository root, with its movierec/__init__.py, on
    # sys.path); REF's own __init__ where it has one
    init = package / "__init__.py"
    if not init.exists():
        own = tree / "movierec" / "__init__.py"
        init.write_text(own.read_text() if own.exists() else "")
    return commit, base / "path"


def e2e_subprocess(pairs: Path, artifacts: Path, out: Path, pythonpath: Path | None) -> dict:
    """One timed pairs run in a fresh process (this tree's driver, or another commit's)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "_e2e_run.py"), str(pairs), str(out), str(artifacts)],
        env=env,
        cwd=RESULTS,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
        cfg = ScoreConfig.build(
            pairs_path,
            RESULTS / "scored.parquet",
            artifacts=graphs.folders[graph],
            quiet=True,
            overlap_io=overlap,
        )
        with Timer() as t:
            manifest = score_file(cfg)
        assert manifest["rows_written"] == args.pairs
        return t.seconds

    # catalog mode inputs: every user, their rated pairs excluded
    seen = graphs.artifacts / contract.TRAIN_VAL_PAIRS_FILE
    cat_users = RESULTS / f"catalog_users_{name}.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({contract.USER_COL: users}), cat_users)
    k = DEFAULT_CATALOG_TOP_K
    ccfg = ScoreConfig.build(
        cat_users,
        RESULTS / f"catalog_top_{name}.parquet",
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
    model_ids = cat_arts["catalog graph"].id_schema
    job = ccfg.job.with_model_columns(model_ids)  # the model's ID columns where left out
    ids = job.id_schema(model_ids)
    if job.exclude is not None:
        ex = open_input(job.exclude, "exclude", ids.id_columns, only_columns=True)
        excluded, _ = read_exclusions(ex, ids, cat_arts["catalog graph"], users, DEFAULT_BATCH_SIZE)

    def catalog_scoring(way: str) -> float:
        """The catalog driver's scoring loop alone (rows kept in memory, not written)."""
        spec = catalog_spec(job, cat_arts[way], DEFAULT_BATCH_SIZE)
        sink = Sink.memory()
        executor = LocalExecutor(cat_arts[way])
        t = _timed(
            lambda: stream_catalog(executor, spec, users, excluded, sink, per_task=spec.per_block)
        )
        assert sink.rows == users.size * k
        return t

    def catalog_e2e() -> float:
        return _timed(lambda: score_catalog(ccfg))

    against = {}
    cpu_seconds: dict[str, list[float]] = {}
    if args.against:
        commit, path = against_tree(args.against)
        out = RESULTS / "scored_subprocess.parquet"

        def sub(pythonpath: Path | None) -> float:
            got = e2e_subprocess(pairs_path, folded, out, pythonpath)
            assert got["rows"] == args.pairs
            expected = str(path) if pythonpath else str(REPO)
            assert got["module"].startswith(expected), got["module"]
            cpu_seconds.setdefault("old" if pythonpath else "new", []).append(got["cpu_seconds"])
            return got["seconds"]

        against = {
            "e2e folded, this tree (own process)": lambda: sub(None),
            f"e2e folded, {commit[:12]} (own process)": lambda: sub(path),
        }

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
    if args.e2e_only:
        runs = {"e2e folded": runs["e2e folded"]}
    runs.update(against)
    times: dict[str, list[float]] = {key: [] for key in runs}
    for r in range(args.repeat):
        if args.wait_idle:
            calm = wait_for_idle(args.wait_idle)
            print(f"  [{name}] round {r + 1}: CPUs {'idle' if calm else 'still busy'}", flush=True)
        roof.append(roofline())
        # every other round in reverse order, so that no variant always follows another
        # (a run's output still being flushed to disk slows the next one)
        for key, run in list(runs.items())[:: -1 if r % 2 else 1]:
            times[key].append(run())
        print(
            f"  [{name}] round {r + 1}/{args.repeat}: "
            + ", ".join(f"{key} {v[-1]:.2f}s" for key, v in times.items()),
            flush=True,
        )
    best = {key: min(v) for key, v in times.items()}

    rate = {key: args.pairs / s for key, s in best.items() if not key.startswith("catalog")}
    if args.e2e_only:
        return {
            "pairs": args.pairs,
            "seconds": best,
            "all_seconds": times,
            "pairs_per_second": rate,
            "against_cpu_seconds": cpu_seconds,
        }
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
    return {
        "artifacts": str(graphs.artifacts),
        "arch": graph_metadata(folded)["arch"],
        "flops_per_pair": flops,
        "pairs": args.pairs,
        "seconds": best,
        "all_seconds": times,
        "pairs_per_second": rate,
        "against_cpu_seconds": cpu_seconds,
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


def summarize_against(name: str, m: dict) -> list[tuple[str, str]]:
    """This tree's driver against --against's, both in processes of their own."""
    r = m["pairs_per_second"]
    new, old = (k for k in r if k.endswith("(own process)"))
    rows = [(f"[{name}] {key}", f"{r[key]:>11,.0f} pairs/s") for key in (new, old)]
    rows.append(
        (f"[{name}] this tree / {old.split(', ')[1].split()[0]}", f"{r[new] / r[old]:>11.3f}x")
    )
    cpu = m.get("against_cpu_seconds") or {}
    if cpu:
        rows.append(
            (
                f"[{name}] CPU seconds (best) this tree | other",
                f"{min(cpu['new']):>11.2f} | {min(cpu['old']):.2f}",
            )
        )
    return rows


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
    parser.add_argument(
        "--against",
        metavar="REF",
        default=None,
        help="also run the driver of this git commit side by side (end to end, folded)",
    )
    parser.add_argument(
        "--e2e-only",
        action="store_true",
        help="measure rec-score end to end (folded) only, and --against",
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
        if args.e2e_only:
            rows.append(
                (
                    f"[{name}] rec-score Parquet->Parquet, folded",
                    f"{m['pairs_per_second']['e2e folded']:>11,.0f} pairs/s",
                )
            )
        else:
            rows += summarize(name, m, best_roof)
        if args.against:
            rows += summarize_against(name, m)
    print_table(rows)
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
