"""The whole night at scale: ``rec-nightly`` end to end, this version beside another.

The newest ``--holdback`` (10%) of the data by time are held back from the night, so that
the published models, refit on every rating the night has, can be judged on ratings no run
saw. The rest is written once as a MovieLens CSV folder (any version reads it), then each
night runs as a process of its own (``/usr/bin/time``-style peak RSS from ``wait4``):

  rec-nightly --data NIGHT --home HOME --titles --quiet

For each night it reports the wall time and peak RSS by stage (``runs/VERSION.json``), the
process's peak RSS, the evaluation run's holdout metrics (test RMSE, NDCG@10), and the
published model on the held-back ratings, as served by ``rec-score``: RMSE over every
held-back rating (unknown users and movies by the fallback) and NDCG@10 of a seeded sample
of 2,000 held-back users the model knows (relevant: rating >= 4; candidates: every movie
of the model they had not rated), from its ``--all-movies`` top-10 table.

    python bench/night_at_scale.py --data /work/data/scale1 [--against REF] [--skip-this]
        [-- extra rec-nightly options for this version]

``--against REF`` runs the night of the commit ``REF`` too (a ``git worktree``, as
``bench/score.py`` does), before this version's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.score import against_tree  # noqa: E402

RESULTS = REPO / "bench" / "results"
SAMPLE_USERS = 2000


def split_night(data: Path, out: Path, holdback: float) -> tuple[Path, Path, Path]:
    """``out/night`` (a MovieLens CSV folder without the newest ratings), and the held-back
    ratings as ``out/tomorrow.parquet`` (user_id, movie_id, rating); written once."""
    night, tomorrow = out / "night", out / "tomorrow.parquet"
    rated = out / "night_ratings.parquet"
    if (night / "ratings.csv").exists() and tomorrow.exists() and rated.exists():
        return night, tomorrow, rated
    table = pacsv.read_csv(data / "ratings.csv")
    order = pc.sort_indices(table, sort_keys=[("timestamp", "ascending")]).to_numpy()
    cut = len(order) - int(round(len(order) * holdback))
    keep = np.sort(order[:cut])
    night.mkdir(parents=True, exist_ok=True)
    kept = table.take(pa.array(keep))
    with pa.OSFile(str(night / "ratings.csv"), "wb") as sink:  # a plain header line
        sink.write(b"userId,movieId,rating,timestamp\n")
        pacsv.write_csv(kept, sink, write_options=pacsv.WriteOptions(include_header=False))
    if (data / "movies.csv").exists():
        shutil.copy2(data / "movies.csv", night / "movies.csv")
    names = {"userId": "user_id", "movieId": "movie_id"}
    later = table.take(pa.array(order[cut:]))
    pq.write_table(
        pa.table({names[c]: later[c] for c in names} | {"rating": later["rating"]}), tomorrow
    )
    pq.write_table(pa.table({names[c]: kept[c] for c in names}), rated)
    return night, tomorrow, rated


def run(argv: list[str], log: Path, env: dict | None = None) -> dict:
    """Run a command; wall seconds and its peak RSS (GiB)."""
    start = time.perf_counter()
    with log.open("w") as out:
        # not from the repository root: there Python would import this checkout's movierec
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {code}:\n{log.read_text()[-3000:]}")
    return {"wall_s": time.perf_counter() - start, "peak_gib": usage.ru_maxrss / 2**20}


def judge(model: Path, tomorrow: Path, rated: Path, work: Path, env: dict | None) -> dict:
    """The published model on the held-back ratings, through ``rec-score``."""
    scored = work / "tomorrow_scores.parquet"
    run(
        [
            sys.executable,
            "-m",
            "movierec.serve_batch",
            str(tomorrow),
            str(scored),
            "--artifacts",
            str(model),
            "--quiet",
        ],
        work / "judge-pairs.log",
        env,
    )
    manifest = json.loads(scored.with_name(scored.name + ".manifest.json").read_text())
    rmse = manifest["metrics"]["rmse"]
    mapping = json.loads((model / "id_mapping.json").read_text())
    known = np.array(sorted(int(k) for k in mapping["user_index"]))
    t = pq.read_table(tomorrow)
    users, movies = t["user_id"].to_numpy(), t["movie_id"].to_numpy()
    relevant = t["rating"].to_numpy() >= 4
    candidates = np.unique(users[relevant])
    candidates = candidates[np.isin(candidates, known)]
    rng = np.random.default_rng(0)
    if candidates.size > SAMPLE_USERS:
        candidates = np.sort(rng.choice(candidates, SAMPLE_USERS, replace=False))
    users_file = work / "judge_users.parquet"
    pq.write_table(pa.table({"user_id": pa.array(candidates, pa.int64())}), users_file)
    top = work / "judge_top.parquet"
    run(
        [
            sys.executable,
            "-m",
            "movierec.serve_batch",
            str(users_file),
            str(top),
            "--artifacts",
            str(model),
            "--all-movies",
            "--exclude",
            str(rated),
            "--top-k",
            "10",
            "--quiet",
        ],
        work / "judge-catalog.log",
        env,
    )
    lists = pq.read_table(top)
    rel = {(u, m) for u, m in zip(users[relevant], movies[relevant], strict=True)}
    n_rel: dict[int, int] = {}
    for u in users[relevant]:
        n_rel[u] = n_rel.get(u, 0) + 1
    discounts = 1.0 / np.log2(np.arange(2, 12))
    gains: dict[int, float] = {}
    for u, r, m in zip(
        lists["user_id"].to_pylist(),
        lists["rank"].to_pylist(),
        lists["movie_id"].to_pylist(),
        strict=True,
    ):
        if (u, m) in rel:
            gains[u] = gains.get(u, 0.0) + discounts[r - 1]
    ndcg = [gains.get(u, 0.0) / discounts[: min(n_rel[u], 10)].sum() for u in candidates]
    return {
        "rmse": rmse,
        "ndcg@10": float(np.mean(ndcg)),
        "users_ranked": int(candidates.size),
        "pairs": manifest["rows_written"],
    }


def night(name: str, night_data: Path, home: Path, extra: list[str], env: dict | None) -> dict:
    if home.exists():
        shutil.rmtree(home)
    argv = [
        sys.executable,
        "-m",
        "movierec.nightly",
        "--data",
        str(night_data),
        "--home",
        str(home),
        "--titles",
        "--quiet",
        *extra,
    ]
    got = run(argv, home.parent / f"{name}.log", env)
    report = json.loads(next((home / "runs").glob("*.json")).read_text())
    stages = {
        k: {"wall_s": v.get("wall_seconds"), "peak_mib": v.get("peak_rss_mib")}
        for k, v in report["stages"].items()
        if "wall_seconds" in v
    }
    cand = report["metrics"]["candidate"]
    return {
        **got,
        "stages": stages,
        "status": report["status"],
        "holdout": {"test_rmse": cand["test_rmse"], "ndcg@10": cand["test_ndcg@10"]},
        "model": str(home / "models" / "current"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a MovieLens CSV folder")
    parser.add_argument("--holdback", type=float, default=0.1)
    parser.add_argument("--against", default=None, help="another commit's night beside")
    parser.add_argument("--skip-this", action="store_true", help="only the --against night")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("extra", nargs="*", help="rec-nightly options of this version, after --")
    args = parser.parse_args()
    work = args.work or RESULTS / f"night-{args.data.name}"
    work.mkdir(parents=True, exist_ok=True)
    night_data, tomorrow, rated = split_night(args.data, work, args.holdback)
    nights = {}
    if args.against:
        commit, path = against_tree(args.against)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(path)
        name = f"night of {commit[:10]}"
        nights[name] = night("against", night_data, work / "home-against", [], env)
        nights[name]["held_back"] = judge(Path(nights[name]["model"]), tomorrow, rated, work, env)
    if not args.skip_this:
        nights["this night"] = night("this", night_data, work / "home-this", args.extra, None)
        nights["this night"]["held_back"] = judge(
            Path(nights["this night"]["model"]), tomorrow, rated, work, None
        )
    # this version's stages in their order, then any only another version has
    stages = list(dict.fromkeys(s for n in reversed(nights.values()) for s in n["stages"]))
    print(f"\nrec-nightly on {night_data} ({args.holdback:.0%} newest held back)")
    header = f"{'':<26}" + "".join(f"{n:>30}" for n in nights)
    print(header)
    for stage in stages:
        cells = []
        for n in nights.values():
            s = n["stages"].get(stage)
            cells.append(f"{s['wall_s']:>8.1f} s {s['peak_mib'] / 1024:>6.2f} GiB" if s else "-")
        print(f"{stage:<26}" + "".join(f"{c:>30}" for c in cells))
    rows = [
        ("whole night (wall, peak)", lambda n: f"{n['wall_s']:.0f} s {n['peak_gib']:.2f} GiB"),
        ("holdout test RMSE", lambda n: f"{n['holdout']['test_rmse']:.4f}"),
        ("holdout NDCG@10", lambda n: f"{n['holdout']['ndcg@10']:.4f}"),
        ("held-back RMSE", lambda n: f"{n['held_back']['rmse']:.4f}"),
        ("held-back NDCG@10", lambda n: f"{n['held_back']['ndcg@10']:.4f}"),
    ]
    for label, cell in rows:
        print(f"{label:<26}" + "".join(f"{cell(n):>30}" for n in nights.values()))
    out = RESULTS / f"night_at_scale-{args.data.name}.json"
    out.write_text(json.dumps(nights, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
