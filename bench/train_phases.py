"""Where ``rec-train``'s time and memory go: wall seconds and peak RSS of each phase.

Runs ``run_training`` in this process (the defaults of ``rec-train``, or the options after
``--``) with each phase's function wrapped: loading, the split, the network's fit (its
validation passes apart), the item-item head's SVD, lambda grid and final fit, the rank-mix
and recency-prior grids, the evaluation, and the files written. A thread samples the
resident size every 20 ms, so each phase gets the largest size seen while it ran (phases
nest: a validation pass runs inside the fit).

    python bench/train_phases.py --data /work/data/scale1 [--artifacts DIR] [-- --epochs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: (module, function, phase name), in the order the table lists them.
PHASES = (
    ("movierec.train.pipeline", "load_data", "load the ratings"),
    ("movierec.train.pipeline", "split_data", "split"),
    ("movierec.train.pipeline", "build_and_fit", "fit (build, epochs, validation passes)"),
    ("movierec.train.loop", "predict_part", "  validation passes (in the fit)"),
    ("movierec.train.pipeline", "predict_known", "rating errors (validation, test)"),
    ("movierec.train.head_fit", "spectrum", "item-item: ratings matrix + SVD"),
    ("movierec.train.head_fit", "fit_item_item_head", "item-item: the head's fit (2 SVDs, grid)"),
    ("movierec.train.pipeline", "choose_rank_mix", "rank-mix grid"),
    ("movierec.train.pipeline", "choose_recency", "recency-prior grid"),
    ("movierec.train.pipeline", "refit_on_validation", "refit on train + validation"),
    ("movierec.train.pipeline", "install_item_item", "item-item: head on every rating"),
    ("movierec.train.pipeline", "evaluate", "evaluate on test (errors, ranking)"),
    ("movierec.train.pipeline", "save_checkpoint", "write checkpoint.pt"),
    ("movierec.train.pipeline", "write_pairs", "write test/seen pairs"),
    ("movierec.train.pipeline", "plot_curves", "write training_curves.png"),
)


class Sampler:
    """Resident size every ``every`` seconds, as ``(time, bytes)`` samples."""

    def __init__(self, every: float = 0.02) -> None:
        import os

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append((time.perf_counter(), self.rss()))

    def peak(self, t0: float, t1: float) -> int:
        inside = [r for t, r in self.samples if t0 <= t <= t1]
        return max(inside, default=self.rss())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wrap(sampler: Sampler, calls: dict, module: str, name: str, phase: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    original = getattr(mod, name)

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            t1 = time.perf_counter()
            calls[phase].append((t0, t1))

    setattr(mod, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--artifacts", type=Path, default=Path("/tmp/train_phases"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/train_phases.json")
    parser.add_argument("options", nargs="*", help="rec-train options, after --")
    args = parser.parse_args()
    import logging

    from click.testing import CliRunner  # noqa: F401 (keeps click's import out of the timings)

    from movierec.train.cli import cli
    from movierec.train.config import TrainConfig
    from movierec.train.pipeline import run_training

    # the options as rec-train parses them
    ctx = cli.make_context("rec-train", ["--data", str(args.data), *args.options])
    params = dict(ctx.params)
    from movierec.train.options import columns_from_options

    columns = columns_from_options(
        *(params.pop(k) for k in ("user_col", "movie_col", "rating_col", "time_col", "title_col"))
    )
    arch = params.pop("arch")
    params.pop("quiet")
    params["artifacts"] = args.artifacts
    config = TrainConfig.for_arch(arch, quiet=True, columns=columns, **params)
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)8.0f ms %(message)s")

    sampler = Sampler()
    calls: dict = defaultdict(list)
    for module, name, phase in PHASES:
        wrap(sampler, calls, module, name, phase)
    t0 = time.perf_counter()
    result = run_training(config)
    total = time.perf_counter() - t0
    sampler.stop()
    rows = []
    for _, _, phase in PHASES:
        spans = calls.get(phase, [])
        if not spans:
            continue
        wall = sum(b - a for a, b in spans)
        peak = max(sampler.peak(a, b) for a, b in spans)
        rows.append({"phase": phase, "calls": len(spans), "wall_s": wall, "peak_gib": peak / 2**30})
    overall = max(r for _, r in sampler.samples) / 2**30
    m = result.metrics
    print(f"\nrec-train phases: {args.data} ({m['data']['ratings']:,} ratings)")
    print(f"{'phase':<44} {'calls':>5} {'wall s':>8} {'peak RSS GiB':>13}")
    for r in rows:
        print(f"{r['phase']:<44} {r['calls']:>5} {r['wall_s']:>8.1f} {r['peak_gib']:>13.2f}")
    print(f"{'total':<44} {'':>5} {total:>8.1f} {overall:>13.2f}")
    print(
        f"\n{m['epochs_run']} epochs (best {m['best_epoch']}), fit {m['train_seconds']:.1f} s; "
        f"test RMSE {m['test']['rmse']:.4f}, NDCG@10 {m['test']['ndcg@10']:.4f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "data": str(args.data),
                "options": args.options,
                "phases": rows,
                "total_s": total,
                "peak_gib": overall,
                "epochs_run": m["epochs_run"],
                "best_epoch": m["best_epoch"],
                "train_seconds": m["train_seconds"],
                "test": m["test"],
                "val": m["val"],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
