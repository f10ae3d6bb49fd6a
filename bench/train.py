"""Training speed: the notebook's DataLoader loop vs ours, the default total time, and
the thread count.

Measured in one run on the same data and model (the seed network, batch 64):
  * notebook: a ``Dataset`` whose ``__getitem__`` returns one row, batched by
    ``DataLoader(shuffle=True)`` -- how the seed notebook fed the model;
  * ours: ``movierec.train.loop.fit``, batches sliced from tensors.
Then the default ``rec-train`` configuration end to end (data load to metrics).

    python bench/train.py [--data ../shared/data/ml-100k] [--epochs 2]

``--threads-sweep`` instead times ``fit`` of the default model (``--epochs`` epochs, no
early stopping) with 1 and 2 torch threads and PyTorch's default, each alone and beside
one busy-looping process (a competing job on a shared machine), best of ``--repeat``:

    python bench/train.py --threads-sweep --data DATA [--epochs 1] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from movierec.train.config import TrainConfig  # noqa: E402
from movierec.train.data import load_movielens  # noqa: E402
from movierec.train.loop import fit  # noqa: E402
from movierec.train.model import RecommenderNet, seed_config  # noqa: E402
from movierec.train.pipeline import run_training  # noqa: E402
from movierec.train.split import split_data  # noqa: E402


class RowDataset(Dataset):
    """The notebook's dataset: one (user, movie, rating) row per ``__getitem__``."""

    def __init__(self, users, movies, ratings):
        self.users, self.movies, self.ratings = users, movies, ratings

    def __len__(self):
        return len(self.ratings)

    def __getitem__(self, i):
        return (
            torch.tensor(self.users[i], dtype=torch.long),
            torch.tensor(self.movies[i], dtype=torch.long),
            torch.tensor(self.ratings[i], dtype=torch.float),
        )


def notebook_epoch_seconds(model, part, batch_size: int, epochs: int) -> float:
    loader = DataLoader(
        RowDataset(part.user_idx, part.movie_idx, part.rating), batch_size=batch_size, shuffle=True
    )
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    loss_fn = torch.nn.MSELoss()
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for u, m, r in loader:
            opt.zero_grad()
            loss = loss_fn(model(u, m), r)
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / epochs


def _busy_loop() -> None:
    while True:
        pass


def threads_sweep(data_path: Path, epochs: int, repeat: int, out: Path) -> None:
    """``fit`` seconds per thread count, quiet and beside a busy-looping process."""
    import multiprocessing
    import os

    from movierec.train.pipeline import build_model_config, implicit_neighbours

    data = load_movielens(data_path)
    split = split_data(data, "random")
    config = TrainConfig.for_arch("hybrid", epochs=epochs, patience=0, quiet=True)
    config = config.for_data(len(split.train))
    default_threads = torch.get_num_threads()
    results = []
    for competing in (False, True):
        busy = None
        if competing:
            busy = multiprocessing.get_context("spawn").Process(target=_busy_loop, daemon=True)
            busy.start()
        try:
            for threads in sorted({1, 2, default_threads}):
                best = None
                for _ in range(repeat):
                    torch.set_num_threads(threads)
                    neighbours = implicit_neighbours(config, split)
                    torch.manual_seed(0)
                    model = RecommenderNet(
                        build_model_config(config, split, data.rating_scale, 0, 0, neighbours)
                    )
                    model.set_neighbours(*neighbours)
                    load = os.getloadavg()[0]
                    cpu = time.process_time()
                    hist = fit(model, split.train, split.val, config)
                    run = {
                        "threads": threads,
                        "default": threads == default_threads,
                        "competing_process": competing,
                        "seconds": hist.seconds,
                        "cpu_seconds": time.process_time() - cpu,
                        "rows_per_s": len(split.train) * epochs / hist.seconds,
                        "load_before": load,
                    }
                    if best is None or run["seconds"] < best["seconds"]:
                        best = run
                results.append(best)
        finally:
            if busy is not None:
                busy.terminate()
                busy.join()
    torch.set_num_threads(default_threads)
    print(
        f"fit of the default model on {data_path} ({len(split.train)} training rows, "
        f"{epochs} epoch(s), batch {config.batch_size}, implicit {config.implicit}; "
        f"PyTorch's default: {default_threads} threads; best of {repeat})"
    )
    print("  threads  competing process  seconds  cpu s   rows/s    load before")
    for r in results:
        name = f"{r['threads']}{' (default)' if r['default'] else ''}"
        print(
            f"  {name:<12} {'yes' if r['competing_process'] else 'no':<15} "
            f"{r['seconds']:7.1f}  {r['cpu_seconds']:6.1f}  {r['rows_per_s']:8.0f}  "
            f"{r['load_before']:.2f}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(data_path), "runs": results}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ml-100k")
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per loop")
    parser.add_argument("--threads-sweep", action="store_true", help="time thread counts")
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting (sweep)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads_sweep:
        out = args.out or ROOT / "bench/results/train_threads.json"
        threads_sweep(args.data, args.epochs, args.repeat, out)
        return
    args.out = args.out or ROOT / "bench/results/train.json"

    data = load_movielens(args.data)
    split = split_data(data, "random")
    gm = float(split.train.rating.mean())

    def fresh():
        torch.manual_seed(0)
        return RecommenderNet(
            seed_config(split.vocab.n_users, split.vocab.n_movies, *data.rating_scale, gm)
        )

    nb = notebook_epoch_seconds(fresh(), split.train, 64, args.epochs)
    cfg = TrainConfig.for_arch("seed", epochs=args.epochs, quiet=True)
    hist = fit(fresh(), split.train, split.val, cfg)
    ours = hist.seconds / hist.epochs_run  # includes the per-epoch validation pass

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_training(
            TrainConfig.for_arch("hybrid", data=args.data, artifacts=Path(tmp), quiet=True)
        )
        total = time.perf_counter() - start

    rows = [
        ("notebook DataLoader loop, batch 64", f"{nb:.2f} s/epoch"),
        ("ours (tensor slices), batch 64", f"{ours:.2f} s/epoch"),
        ("speed-up at equal batch size", f"{nb / ours:.1f}x"),
        (
            "default rec-train, total",
            f"{total:.1f} s ({result.metrics['epochs_run']} epochs, "
            f"test RMSE {result.metrics['test']['rmse']:.4f})",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"training speed on {data.path} ({len(split.train)} training rows, "
        f"{torch.get_num_threads()} torch threads)"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "notebook_seconds_per_epoch": nb,
                "ours_seconds_per_epoch": ours,
                "speedup": nb / ours,
                "default_total_seconds": total,
                "default_epochs": result.metrics["epochs_run"],
                "default_test_rmse": result.metrics["test"]["rmse"],
                "torch_threads": torch.get_num_threads(),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
