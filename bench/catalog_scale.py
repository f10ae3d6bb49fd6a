"""Catalog mode at MovieLens-25M size: the old and the new catalog path side by side.

    python bench/catalog_scale.py [--scale 0.2 | --full | --checkpoint DIR] [--threads 2]
                                  [--cpus 0,1] [--old-ref REF] [--sample-users 2000]
                                  [--repeat 1]

Builds once, under bench/results/catalog_scale/S<scale>/ (reused while the recipe is
unchanged):

* a ``RecommenderNet`` of the default TrainConfig shape (embedding 32, hidden (64,),
  factors 64, rank_factors 32, rank_mix 1.0, rating scale 0.5-5) sized to the scale
  (full: 162,541 users x 59,047 movies, as MovieLens 25M; users and ratings scale by
  S, movies by sqrt(S), as the issue's 0.2 data set), with random weights drawn per
  table part from the statistics of the default model trained on ml-latest-small (see
  ``RECIPE``), no implicit terms (export folds them into the tables either way);
* its checkpoint, exported by ``rec-export`` itself (this tree, and the tree at
  ``--old-ref`` for the old path, each with its own catalog graph);
* ``users.parquet`` (every user) and ``ratings.parquet``, the exclusions: heavy-tailed
  user activity (lognormal, at least 20 ratings, as MovieLens) over Zipf-popular movies,
  25,000,095 ratings at full size.

Then it runs ``rec-score USERS OUT --all-movies --exclude RATINGS`` as whole processes,
each timed (wall) with its peak RSS (GNU ``/usr/bin/time``):

* new: this tree, every user;
* old: the code at ``--old-ref`` (default: the commit before the blocked catalog path)
  with its own export, on ``--sample-users`` users (0: every user);
* pairs: this tree without catalog.onnx (every pair through model.onnx), same sample.

A sample run's total is PROJECTED from a run of 8 users (the fixed cost: loading,
reading the 25M exclusions) and the sample's per-user time; the table says so. The new
path's table must equal the old path's and the pairs path's for the sampled users
(user, rank, movie; ratings within 1e-5). Scores/s counts users x movies candidate
pairs. Writes bench/results/catalog_scale_S<scale>.json.

``--checkpoint DIR`` runs the same on a trained model (a rec-train output folder): every
user of it, with all its ratings (train, validation and test) excluded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

#: MovieLens 25M: users, rated movies, ratings.
FULL = (162_541, 59_047, 25_000_095)
#: The commit before this benchmark's catalog path (the broadcast catalog graph).
OLD_REF = "33758fa"
#: Per table part: (mean of the column means' spread, spread within a column), from the
#: default model trained on ml-latest-small (bench/results/ref_small in the first run).
RECIPE = {
    "user": {
        "embedding": (0.031, 0.055),
        "factors": (0.066, 0.132),
        "bias": (0.0, 0.177),
        "rank": (0.240, 0.147),
    },
    "movie": {
        "embedding": (0.024, 0.061),
        "factors": (0.026, 0.090),
        "bias": (0.0, 0.087),
        "rank": (0.067, 0.201),
    },
    "rank_bias": (0.17, 0.21),  # mean, std; tied to the movie's popularity
    "mlp": {"w1": (0.002, 0.030), "b1": (0.040, 0.032), "w2": (-0.067, 0.085), "b2": -0.007},
    "rank_mix": 1.0,
    "scale": (0.5, 5.0),
    "seed": 0,
}


def sizes(scale: float) -> tuple[int, int, int]:
    """(users, movies, ratings) at ``scale``: the issue's 0.2 data set has 32,508 users,
    26,406 movies and 5,000,019 ratings."""
    users, movies, ratings = FULL
    return int(users * scale), int(movies * math.sqrt(scale)), int(ratings * scale)


# --- data ---------------------------------------------------------------------------------


def movie_ids_and_popularity(n_movies: int, rng: np.random.Generator):
    """Sparse movie IDs (MovieLens 25M's go up to 209,171) and Zipf popularity weights."""
    ids = np.sort(rng.choice(np.arange(1, max(209_171, 2 * n_movies)), n_movies, replace=False))
    rank = rng.permutation(n_movies)
    zipf = 1.0 / (rank + 10.0) ** 1.1
    return ids, zipf / zipf.sum()


def user_counts(n_users: int, n_movies: int, total: int, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: at least 20, lognormal tail, capped at a fifth of the movies."""
    floor = min(20, n_movies // 5)
    raw = rng.lognormal(0.0, 1.4, n_users)
    cap = max(floor, n_movies // 5)
    counts = np.minimum(floor + np.floor(raw / raw.sum() * (total - floor * n_users)), cap)
    counts = counts.astype(np.int64)
    short = total - int(counts.sum())
    while short > 0:  # hand the rounding and the capped excess to users under the cap
        room = np.flatnonzero(counts < cap)
        add = rng.choice(room, min(short, room.size), replace=False)
        counts[add] += 1
        short -= add.size
    return counts


#: Users with more ratings than this draw theirs one user at a time (Gumbel top-k).
HEAVY_USER = 256


def make_ratings(n_users: int, popularity: np.ndarray, total: int, rng) -> np.ndarray:
    """Sorted distinct keys ``user_row * n_movies + movie_row``: each user's movies drawn
    without replacement from a mix of popularity (80%) and uniform (20%)."""
    n_movies = popularity.size
    counts = user_counts(n_users, n_movies, total, rng)
    mix = 0.8 * popularity + 0.2 / n_movies
    heavy = np.flatnonzero(counts > HEAVY_USER)
    parts = []
    logp = np.log(mix)
    for u in heavy:  # Gumbel top-k: weighted sampling without replacement
        top = np.argpartition(-(logp + rng.gumbel(size=n_movies)), counts[u])[: counts[u]]
        parts.append(u * n_movies + np.sort(top))
    cdf = np.cumsum(mix)
    cdf /= cdf[-1]
    keys = np.empty(0, dtype=np.int64)
    need = counts.copy()
    need[heavy] = 0
    while need.any():  # light users: draw with replacement, drop repeats, draw again
        users = np.repeat(np.arange(n_users, dtype=np.int64), need + (need > 0) * (need // 2 + 2))
        movies = np.minimum(np.searchsorted(cdf, rng.random(users.size)), n_movies - 1)
        fresh = np.setdiff1d(np.unique(users * n_movies + movies), keys, assume_unique=True)
        owner = fresh // n_movies
        order = np.lexsort((rng.random(fresh.size), owner))  # random order within a user
        fresh, owner = fresh[order], owner[order]
        first = np.searchsorted(owner, owner)
        keys = np.union1d(keys, fresh[np.arange(owner.size) - first < need[owner]])
        need = counts - np.bincount(keys // n_movies, minlength=n_users)
        need[heavy] = 0
    return np.sort(np.concatenate([keys, *parts]))


def write_ratings(path: Path, keys: np.ndarray, user_ids, movie_ids, rng) -> None:
    schema = pa.schema(
        [("user_id", pa.int64()), ("movie_id", pa.int64()), ("rating", pa.float32())]
    )
    n_movies = movie_ids.size
    tmp = path.with_name(path.name + ".partial")
    with pq.ParquetWriter(tmp, schema) as writer:
        for a in range(0, keys.size, 1 << 20):
            part = keys[a : a + (1 << 20)]
            stars = rng.integers(1, 11, part.size).astype(np.float32) / 2
            writer.write_table(
                pa.table(
                    [user_ids[part // n_movies], movie_ids[part % n_movies], stars],
                    schema=schema,
                )
            )
    tmp.replace(path)


# --- model --------------------------------------------------------------------------------


def build_model(n_users: int, n_movies: int, popularity: np.ndarray, seed: int):
    """The default architecture with random weights shaped like a trained model's."""
    import torch

    from movierec.train.model import ModelConfig, RecommenderNet

    lo, hi = RECIPE["scale"]
    config = ModelConfig(
        n_users=n_users,
        n_movies=n_movies,
        embedding_dim=32,
        hidden=(64,),
        factors=64,
        rank_factors=32,
        rating_min=lo,
        rating_max=hi,
        global_mean=3.5,
    )
    model = RecommenderNet(config)
    gen = torch.Generator().manual_seed(seed)

    def normal(mean, std, *shape):
        return mean + std * torch.randn(*shape, generator=gen)

    with torch.no_grad():
        for side, table, cols in (
            ("user", model.user_table, model.ucols),
            ("movie", model.movie_table, model.mcols),
        ):
            n = table.weight.shape[0]
            for part, (spread, within) in RECIPE[side].items():
                width = cols[part].stop - cols[part].start
                col_means = normal(0.0, spread, width)
                table.weight[:, cols[part]] = col_means + normal(0.0, within, n, width)
        mean, std = RECIPE["rank_bias"]
        logp = torch.from_numpy(np.log(popularity)).float()
        model.movie_table.weight[:, model.mcols["rank_bias"]] = (
            mean + std * (logp - logp.mean()) / logp.std()
        ).unsqueeze(1)
        m = RECIPE["mlp"]
        first, last = model.mlp[0], model.mlp[-1]
        first.weight.copy_(normal(*m["w1"], *first.weight.shape))
        first.bias.copy_(normal(*m["b1"], *first.bias.shape))
        last.weight.copy_(normal(*m["w2"], *last.weight.shape))
        last.bias.fill_(m["b2"])
        model.rank_mix.fill_(RECIPE["rank_mix"])
    return model.eval()


def save_model_checkpoint(path: Path, model, user_ids, movie_ids, keys, rng) -> None:
    """A checkpoint rec-export reads: the model, its vocabulary and a small split (a
    sample of the ratings stands in for training data: the mapping's fallback means)."""
    from movierec.train.checkpoint import Checkpoint, package_version, save_checkpoint, utc_now
    from movierec.train.split import Part, Split, Vocabulary

    n_movies = movie_ids.size

    def part(n: int) -> Part:
        k = rng.choice(keys, min(n, keys.size), replace=False)
        return Part(k // n_movies, k % n_movies, rng.integers(1, 11, k.size).astype(np.float32) / 2)

    split = Split(Vocabulary(user_ids, movie_ids), part(200_000), part(5_000), part(20_000))
    save_checkpoint(
        path,
        Checkpoint(
            model=model,
            split=split,
            rating_scale=RECIPE["scale"],
            data_fingerprint="synthetic catalog_scale",
            data_layout="synthetic",
            train_config={"synthetic": True, "recipe": RECIPE},
            metrics={"val": {"rmse": float("nan")}, "test": {"rmse": float("nan")}},
            titles={},
            package_version=package_version(),
            created_at=utc_now(),
        ),
    )


def build_inputs(folder: Path, scale: float) -> dict:
    """Checkpoint, users and ratings of ``scale`` in ``folder`` (reused when present)."""
    stamp = folder / "recipe.json"
    want = {"scale": scale, "sizes": sizes(scale), "recipe": RECIPE, "version": 2}
    if stamp.is_file():
        have = json.loads(stamp.read_text())
        if {k: have.get(k) for k in want} == json.loads(json.dumps(want)):
            return have
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "ckpt").mkdir(parents=True)
    n_users, n_movies, n_ratings = sizes(scale)
    rng = np.random.default_rng(RECIPE["seed"])
    t0 = time.perf_counter()
    user_ids = np.arange(1, n_users + 1, dtype=np.int64)
    movie_ids, popularity = movie_ids_and_popularity(n_movies, rng)
    keys = make_ratings(n_users, popularity, n_ratings, rng)
    print(f"  {keys.size:,} ratings drawn in {time.perf_counter() - t0:.1f} s", flush=True)
    write_ratings(folder / "ratings.parquet", keys, user_ids, movie_ids, rng)
    pq.write_table(pa.table({"user_id": user_ids}), folder / "users.parquet")
    model = build_model(n_users, n_movies, popularity, RECIPE["seed"])
    save_model_checkpoint(folder / "ckpt" / "checkpoint.pt", model, user_ids, movie_ids, keys, rng)
    per_user = np.bincount(keys // n_movies, minlength=n_users)
    want["ratings_per_user"] = {
        "min": int(per_user.min()),
        "median": float(np.median(per_user)),
        "mean": float(per_user.mean()),
        "max": int(per_user.max()),
    }
    stamp.write_text(json.dumps(want))
    print(f"  inputs built in {time.perf_counter() - t0:.1f} s", flush=True)
    return want


def checkpoint_inputs(ckpt_dir: Path, folder: Path) -> dict:
    """Users and ratings of a trained checkpoint (every user; train, validation and test
    ratings as the exclusions)."""
    from movierec.train.checkpoint import load_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(Path(ckpt_dir) / "checkpoint.pt")
    vocab, split = ckpt.split.vocab, ckpt.split
    users = np.concatenate([p.user_idx for p in (split.train, split.val, split.test)])
    movies = np.concatenate([p.movie_idx for p in (split.train, split.val, split.test)])
    pq.write_table(
        pa.table({"user_id": vocab.user_ids[users], "movie_id": vocab.movie_ids[movies]}),
        folder / "ratings.parquet",
    )
    pq.write_table(pa.table({"user_id": vocab.user_ids}), folder / "users.parquet")
    return {
        "checkpoint": str(ckpt_dir),
        "sizes": [vocab.n_users, vocab.n_movies, int(users.size)],
        "rank_mix": float(ckpt.model.rank_mix),
    }


# --- processes ----------------------------------------------------------------------------


def old_sources(ref: str, folder: Path) -> Path:
    """The stage folders at ``ref`` laid out as an importable ``movierec`` package."""
    stamp = folder / "ref.txt"
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    if stamp.is_file() and stamp.read_text().strip() == commit:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "archive",
            "--prefix=movierec/",
            commit,
            "serve_batch",
            "export",
            "train",
        ],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    stamp.write_text(commit + "\n")
    return folder


#: GNU time: ``-f %M`` writes the child's peak RSS in KiB. A child forked straight from
#: this process would count this process's RSS at the fork as its own high-water mark.
TIME = "/usr/bin/time"


class Run:
    """One child process: wall seconds, peak RSS (MiB, from GNU time), exit code."""

    def __init__(self, argv: list[str], env: dict, cpus: list[int] | None) -> None:
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
            t0 = time.perf_counter()
            code = subprocess.run(
                [TIME, "-f", "%M", "-o", rss.name, *argv], env=env, preexec_fn=preexec
            ).returncode
            self.seconds = time.perf_counter() - t0
            self.peak_rss_mib = int(Path(rss.name).read_text().split()[-1]) / 1024
        self.code = code
        if code != 0:
            raise SystemExit(f"failed ({code}): {' '.join(argv)}")


def child_env(old_src: Path | None) -> dict:
    env = dict(os.environ)
    if old_src is not None:
        env["PYTHONPATH"] = str(old_src) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("OMP_NUM_THREADS", None)
    return env


def check_import_root(env: dict, want: Path) -> None:
    """The child really imports movierec.serve_batch from ``want``."""
    got = subprocess.run(
        [sys.executable, "-c", "import movierec.serve_batch as s; print(s.__file__)"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(got).resolve().is_relative_to(want.resolve()):
        raise SystemExit(f"the child imports {got}, not from {want}")


def export(env: dict, ckpt: Path, out: Path, cpus) -> Run | None:
    if (out / "model.onnx").is_file() and (out / "catalog.onnx").is_file():
        return None
    return Run(
        [
            sys.executable,
            "-c",
            "from movierec.export.cli import main; main()",
            "--artifacts",
            str(ckpt),
            "--output",
            str(out),
            "-q",
        ],
        env,
        cpus,
    )


def score(env, artifacts: Path, users: Path, ratings: Path, out: Path, threads, cpus) -> Run:
    return Run(
        [
            sys.executable,
            "-m",
            "movierec.serve_batch",
            str(users),
            str(out),
            "--all-movies",
            "--exclude",
            str(ratings),
            "--artifacts",
            str(artifacts),
            "--threads",
            str(threads),
            "--quiet",
        ],
        env,
        cpus,
    )


def same_tables(got: pa.Table, want: pa.Table) -> bool:
    cols = ["user_id", "rank", "movie_id"]
    if not got.select(cols).equals(want.select(cols)):
        return False
    a = got.column("predicted_rating").to_numpy().astype(np.float64)
    b = want.column("predicted_rating").to_numpy().astype(np.float64)
    return bool(np.all(np.abs(a - b) <= 1e-5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.2, help="fraction of MovieLens 25M")
    parser.add_argument("--full", action="store_true", help="scale 1.0 (162,541 users)")
    parser.add_argument("--threads", type=int, default=2, help="rec-score --threads")
    parser.add_argument("--cpus", default=None, help="pin the children to these CPUs, e.g. 0,1")
    parser.add_argument("--old-ref", default=OLD_REF, help="git ref of the old catalog path")
    parser.add_argument(
        "--sample-users",
        type=int,
        default=2000,
        help="users of the old and pairs runs (0: every user)",
    )
    parser.add_argument("--skip-old", action="store_true")
    parser.add_argument("--skip-pairs", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the new path; best kept")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a rec-train output folder instead of the synthetic model: every user of it, "
        "all its ratings (train, validation and test) excluded",
    )
    args = parser.parse_args()
    scale = 1.0 if args.full else args.scale
    cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else None
    n_cores = len(cpus) if cpus else len(os.sched_getaffinity(0))
    if args.checkpoint is not None:
        root = RESULTS / "catalog_scale" / f"trained_{args.checkpoint.resolve().name}"
        info = checkpoint_inputs(args.checkpoint, root)
        ckpt, label = args.checkpoint, f"trained_{args.checkpoint.resolve().name}"
    else:
        root = RESULTS / "catalog_scale" / f"S{scale:g}"
        info = build_inputs(root, scale)
        ckpt, label = root / "ckpt", f"S{scale:g}"
    n_users, n_movies, n_ratings = info["sizes"]
    print(
        f"catalog {label}: {n_users:,} users x {n_movies:,} movies, {n_ratings:,} ratings "
        f"excluded; inputs in {root}"
    )
    users, ratings = root / "users.parquet", root / "ratings.parquet"
    new_env = child_env(None)
    check_import_root(new_env, REPO)
    exports = {}
    new_art = root / "art_new"
    stamp = new_art / "tree.txt"
    tree = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if not stamp.is_file() or stamp.read_text().strip() != tree:
        shutil.rmtree(new_art, ignore_errors=True)  # export again at every new commit
    ran = export(new_env, ckpt, new_art, cpus)
    stamp.write_text(tree + "\n")
    if ran:
        exports["new"] = ran.seconds
    results: dict = {"inputs": info, "cores": n_cores, "threads": args.threads}
    rows = []
    total_pairs = n_users * n_movies

    def row(name: str, seconds: float, rss: float, note: str) -> None:
        rate = total_pairs / seconds
        rows.append((name, seconds, rss, rate, rate / n_cores, note))
        results[name] = {
            "seconds": seconds,
            "peak_rss_mib": rss,
            "scores_per_second": rate,
            "per_core": rate / n_cores,
            "note": note,
        }

    best, runs = None, []
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        run = score(new_env, new_art, users, ratings, root / "top_new.parquet", args.threads, cpus)
        runs.append({"seconds": run.seconds, "peak_rss_mib": run.peak_rss_mib, "load": load})
        best = run if best is None or run.seconds < best.seconds else best
    results["new_runs"] = runs
    row(
        "new",
        best.seconds,
        best.peak_rss_mib,
        "measured, every user; best of "
        + ", ".join(f"{r['seconds']:.1f} s (load {r['load']:.1f})" for r in runs),
    )
    new_table = pq.read_table(root / "top_new.parquet")

    rng = np.random.default_rng(1)
    sample = np.arange(1, n_users + 1)
    if args.sample_users and args.sample_users < n_users:
        sample = np.sort(rng.choice(sample, args.sample_users, replace=False))
    sample_path, tiny_path = root / "sample.parquet", root / "tiny.parquet"
    pq.write_table(pa.table({"user_id": sample}), sample_path)
    pq.write_table(pa.table({"user_id": sample[:8]}), tiny_path)
    want_new = new_table.filter(pa.compute.is_in(new_table["user_id"], pa.array(sample)))
    others = []
    if not args.skip_old:
        old_src = old_sources(args.old_ref, root.parent / "old_src")
        old_env = child_env(old_src)
        check_import_root(old_env, old_src)
        ran = export(old_env, ckpt, root / "art_old", cpus)
        if ran:
            exports["old"] = ran.seconds
        others.append(("old", old_env, root / "art_old"))
    if not args.skip_pairs:
        pairs_art = root / "art_pairs"
        pairs_art.mkdir(exist_ok=True)
        for name in ("model.onnx", "id_mapping.json"):
            shutil.copyfile(new_art / name, pairs_art / name)
        (pairs_art / "catalog.onnx").unlink(missing_ok=True)
        others.append(("pairs", new_env, pairs_art))
    results["equal_to_new"] = {}
    for name, env, art in others:
        run = score(
            env, art, sample_path, ratings, root / f"top_{name}.parquet", args.threads, cpus
        )
        table = pq.read_table(root / f"top_{name}.parquet")
        results["equal_to_new"][name] = same_tables(want_new, table)
        if sample.size == n_users:
            row(name, run.seconds, run.peak_rss_mib, "measured, every user")
            continue
        tiny = score(
            env, art, tiny_path, ratings, root / f"tiny_{name}.parquet", args.threads, cpus
        )
        per_user = max(run.seconds - tiny.seconds, 1e-9) / (sample.size - 8)
        projected = tiny.seconds + per_user * n_users
        row(
            name,
            projected,
            run.peak_rss_mib,
            f"PROJECTED: {sample.size:,} users took {run.seconds:.1f} s, 8 took "
            f"{tiny.seconds:.1f} s",
        )
    results["export_seconds"] = exports
    out = RESULTS / f"catalog_scale_{label}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")

    print(
        f"\ntop-10 of {n_movies:,} movies for {n_users:,} users = {total_pairs:,} scores, "
        f"{info['sizes'][2]:,} rated pairs excluded, rec-score --threads {args.threads} on "
        f"{n_cores} cores:"
    )
    print(f"  {'path':<6} {'wall s':>9} {'peak RSS':>10} {'scores/s':>14} {'per core':>14}")
    for name, seconds, rss, rate, per_core, note in rows:
        print(
            f"  {name:<6} {seconds:>9.1f} {rss:>7.0f} MiB {rate:>14,.0f} {per_core:>14,.0f}  {note}"
        )
    for name, same in results["equal_to_new"].items():
        print(f"  new path's tables == {name} path's for the {sample.size:,} sampled users: {same}")
    if exports:
        print("  rec-export seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in exports.items()))
    print(f"JSON: {out}")
    if not all(results["equal_to_new"].values()):
        sys.exit("the tables differ")


if __name__ == "__main__":
    main()
