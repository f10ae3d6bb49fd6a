"""A service's own interaction log through every command, beside the same ratings as a
MovieLens folder: issue 19's first bar.

ml-latest-small is rewritten the way a service's export looks: ``customer_id`` ("c-00042")
and ``sku`` ("tt0114709") strings, ``stars``, ``event_time`` (a timestamp in the Paris
time zone) in a Parquet file, and an items table ``sku, name`` in CSV. Then, from the
options alone, as processes:

  rec-train --data log.parquet --user-col customer_id --movie-col sku --rating-col stars
            --time-col event_time --items items.csv --title-col name
  rec-export
  rec-score test_pairs.parquet scores.parquet                    (pairs mode)
  rec-score users.parquet top.parquet --all-movies --exclude log.parquet --titles
  rec-nightly --data log.parquet ... --home HOME --titles

and the same with ``--data ml-latest-small`` (integer IDs). It checks that every output
is keyed by the original strings under the original column names, and prints test RMSE
and NDCG@10 of both side by side (the bar: within 0.01).

    python bench/own_log.py [--data ../shared/data/ml-latest-small]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
COLUMNS = [
    "--user-col",
    "customer_id",
    "--movie-col",
    "sku",
    "--rating-col",
    "stars",
    "--time-col",
    "event_time",
]


def write_log(data: Path, out: Path) -> tuple[Path, Path]:
    """The log and items table of a MovieLens CSV folder."""
    r = pd.read_csv(data / "ratings.csv")
    m = pd.read_csv(data / "movies.csv")
    log = pd.DataFrame(
        {
            "customer_id": "c-" + r.userId.map("{:05d}".format),
            "sku": "tt" + r.movieId.map("{:07d}".format),
            "stars": r.rating,
            "event_time": pd.to_datetime(r.timestamp, unit="s", utc=True).dt.tz_convert(
                "Europe/Paris"
            ),
        }
    )
    path = out / "log.parquet"
    pq.write_table(pa.Table.from_pandas(log, preserve_index=False), path)
    items = out / "items.csv"
    pd.DataFrame({"sku": "tt" + m.movieId.map("{:07d}".format), "name": m.title}).to_csv(
        items, index=False
    )
    return path, items


def run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")


def chain(name: str, data: Path, options: list[str], work: Path, exclude: Path) -> dict:
    art = work / f"artifacts-{name}"
    run("rec-train", "--data", str(data), *options, "--artifacts", str(art), "--quiet")
    run("rec-export", "--artifacts", str(art), "--quiet")
    scores = work / f"scores-{name}.parquet"
    run(
        "rec-score",
        str(art / "test_pairs.parquet"),
        str(scores),
        "--artifacts",
        str(art),
        "--quiet",
    )
    pairs = pq.read_table(art / "test_pairs.parquet")
    users = work / f"users-{name}.parquet"
    pq.write_table(pairs.select([0]).group_by(pairs.column_names[0]).aggregate([]), users)
    top = work / f"top-{name}.parquet"
    run(
        "rec-score",
        str(users),
        str(top),
        "--artifacts",
        str(art),
        "--all-movies",
        "--exclude",
        str(exclude),
        "--titles",
        "--quiet",
    )
    home = work / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    run("rec-nightly", "--data", str(data), *options, "--home", str(home), "--titles", "--quiet")
    metrics = json.loads((art / "metrics.json").read_text())
    scored = pq.read_table(scores)
    manifest = json.loads(scores.with_name(scores.name + ".manifest.json").read_text())
    return {
        "test_rmse": metrics["test"]["rmse"],
        "ndcg@10": metrics["test"]["ndcg@10"],
        "served_rmse": manifest["metrics"]["rmse"],
        "pairs_schema": [f"{f.name}: {f.type}" for f in scored.schema],
        "top_schema": [f"{f.name}: {f.type}" for f in pq.read_schema(top)],
        "nightly_schema": [
            f"{f.name}: {f.type}" for f in pq.read_schema(home / "recommendations/latest.parquet")
        ],
        "first_row": pq.read_table(home / "recommendations/latest.parquet").slice(0, 1).to_pylist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/ml-latest-small")
    parser.add_argument("--work", type=Path, default=RESULTS / "own_log")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    log, items = write_log(args.data, args.work)
    ratings = pq.read_table(log)
    # the MovieLens folder's exclusions: every rating, under its own names
    every = args.work / "every_rating.parquet"
    r = pd.read_csv(args.data / "ratings.csv")
    pq.write_table(
        pa.table({"user_id": r.userId.to_numpy(), "movie_id": r.movieId.to_numpy()}), every
    )
    runs = {
        "log (string IDs, own names)": chain(
            "log", log, [*COLUMNS, "--items", str(items), "--title-col", "name"], args.work, log
        ),
        "MovieLens folder (integer IDs)": chain("movielens", args.data, [], args.work, every),
    }
    a, b = runs.values()
    print(f"\n{'':<28}{'string-ID log':>18}{'MovieLens folder':>18}{'difference':>12}")
    for key in ("test_rmse", "ndcg@10", "served_rmse"):
        print(f"{key:<28}{a[key]:>18.4f}{b[key]:>18.4f}{a[key] - b[key]:>12.4f}")
    print("\ncolumns of the log's outputs:")
    for key in ("pairs_schema", "top_schema", "nightly_schema"):
        print(f"  {key.split('_')[0]:<8} {', '.join(a[key])}")
    print(f"  first row of the nightly table: {a['first_row'][0]}")
    ok = all(
        "customer_id: string" in a[key]
        and "sku: string" in a[key]
        and not any(s.startswith(("user_id", "movie_id")) for s in a[key])
        for key in ("pairs_schema", "top_schema", "nightly_schema")
    )
    print(f"\nkeyed by the log's strings under its own names: {ok}; {ratings.num_rows:,} ratings")
    out = RESULTS / "own_log.json"
    out.write_text(json.dumps(runs, indent=2, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
