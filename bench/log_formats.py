"""The same ratings as a MovieLens CSV folder, a Parquet log and a string-ID Parquet log:
peak RSS and seconds of reading them (and, with ``--train``, of a whole ``rec-train``), each
as a process of its own under ``/usr/bin/time -v``, side by side.

    python bench/make_synthetic.py /work/data/scale1 --scale 1.0
    python bench/log_formats.py /work/data/scale1 [--train] [--repeat 2]

The Parquet logs are written beside the folder (``<folder>-log/``) once: ``ratings.parquet``
(integer IDs under the default column names) and ``ratings-strings.parquet``
(``customer_id`` "c-<id>", ``sku`` "tt<id>", ``stars``, ``event_time`` as a timestamp).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What the load-only child runs: read and split, as rec-train does before training.
LOAD = """
import sys, time
from pathlib import Path
from movierec.train.config import TrainConfig
from movierec.train.data import Columns
from movierec.train.pipeline import load_data
from movierec.train.split import split_data
columns = Columns(**eval(sys.argv[2]))
t0 = time.perf_counter()
data = load_data(TrainConfig(data=Path(sys.argv[1]), columns=columns))
t1 = time.perf_counter()
split = split_data(data, "random")
t2 = time.perf_counter()
rows = len(split.train) + len(split.val) + len(split.test)
print(f"LOAD {t1 - t0:.2f} SPLIT {t2 - t1:.2f} ROWS {rows}")
"""

STRING_COLUMNS = dict(user="customer_id", movie="sku", rating="stars", time="event_time")


def write_logs(folder: Path) -> tuple[Path, Path]:
    """The Parquet logs of ``folder/ratings.csv`` (written once, chunk by chunk)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = folder.parent / f"{folder.name}-log"
    ints, strings = out / "ratings.parquet", out / "ratings-strings.parquet"
    if ints.exists() and strings.exists():
        return ints, strings
    out.mkdir(exist_ok=True)
    reader = pacsv.open_csv(
        folder / "ratings.csv", read_options=pacsv.ReadOptions(block_size=1 << 26)
    )
    w_int = w_str = None
    for batch in reader:
        t = pa.Table.from_batches([batch])
        table = pa.table(
            {
                "user_id": t["userId"].cast(pa.int64()),
                "movie_id": t["movieId"].cast(pa.int64()),
                "rating": t["rating"].cast(pa.float32()),
                "timestamp": t["timestamp"].cast(pa.int64()),
            }
        )
        as_text = pa.table(
            {
                "customer_id": pc.binary_join_element_wise("c-", t["userId"].cast(pa.string()), ""),
                "sku": pc.binary_join_element_wise("tt", t["movieId"].cast(pa.string()), ""),
                "stars": t["rating"].cast(pa.float32()),
                "event_time": t["timestamp"].cast(pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            }
        )
        if w_int is None:
            w_int = pq.ParquetWriter(ints, table.schema)
            w_str = pq.ParquetWriter(strings, as_text.schema)
        w_int.write_table(table)
        w_str.write_table(as_text)
    w_int.close()
    w_str.close()
    return ints, strings


def measure(argv: list[str]) -> dict:
    """Run ``argv`` under ``/usr/bin/time -v``: wall seconds, peak RSS (GiB), its stdout."""
    t0 = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{argv} failed:\n{done.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return {"wall_s": round(wall, 1), "peak_rss_gib": round(rss / 2**20, 3), "stdout": done.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a MovieLens CSV-layout folder (make_synthetic)")
    parser.add_argument("--train", action="store_true", help="also a whole rec-train of each")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (best is kept)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/log_formats.json")
    args = parser.parse_args()
    ints, strings = write_logs(args.folder)
    sources = {
        "MovieLens CSV folder": (args.folder, {}),
        "Parquet log, integer IDs": (ints, {}),
        "Parquet log, string IDs": (strings, STRING_COLUMNS),
    }
    results: dict = {}
    for name, (path, columns) in sources.items():
        runs = []
        for _ in range(args.repeat):
            got = measure([sys.executable, "-c", LOAD, str(path), repr(columns)])
            found = re.search(r"LOAD ([\d.]+) SPLIT ([\d.]+) ROWS (\d+)", got["stdout"])
            runs.append(
                {
                    **got,
                    "load_s": float(found[1]),
                    "split_s": float(found[2]),
                    "rows": int(found[3]),
                }
            )
        results[name] = {"load": min(runs, key=lambda r: r["peak_rss_gib"]), "load_runs": runs}
        if args.train:
            flags = []
            for role, col in columns.items():
                flags += [f"--{role}-col", col]
            art = Path(f"/tmp/log_formats-{len(results)}")
            train = [
                measure(
                    ["rec-train", "--data", str(path), "--artifacts", str(art), "--quiet", *flags]
                )
                for _ in range(args.repeat)
            ]
            metrics = json.loads((art / "metrics.json").read_text())
            best = min(train, key=lambda r: r["peak_rss_gib"])
            results[name]["train"] = {
                **{k: v for k, v in best.items() if k != "stdout"},
                "test_rmse": metrics["test"]["rmse"],
                "ndcg@10": metrics["test"]["ndcg@10"],
            }
            results[name]["train_runs"] = [
                {k: v for k, v in r.items() if k != "stdout"} for r in train
            ]
    print(f"\n{'source':<28} {'load s':>7} {'split s':>8} {'load peak GiB':>14}", end="")
    print(
        f" {'rec-train s':>12} {'rec-train peak GiB':>19} {'test RMSE':>10}" if args.train else ""
    )
    for name, r in results.items():
        load = r["load"]
        line = f"{name:<28} {load['load_s']:>7.1f} {load['split_s']:>8.1f}"
        line += f" {load['peak_rss_gib']:>14.2f}"
        if "train" in r:
            t = r["train"]
            line += f" {t['wall_s']:>12.0f} {t['peak_rss_gib']:>19.2f} {t['test_rmse']:>10.4f}"
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for r in results.values():
        for run in r["load_runs"]:
            run.pop("stdout", None)
        r["load"].pop("stdout", None)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
