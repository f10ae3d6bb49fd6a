"""String IDs against integer IDs on the same model, as whole ``rec-score`` processes.

    python bench/string_ids.py [--sizes ml-100k,0.2] [--repeat 3] [--threads 2]
                               [--cpus 0,1] [--skip-load]

For each size, one model: the default architecture with random weights shaped like a
trained model's, its checkpoint exported by ``rec-export`` itself
(``bench/catalog_scale.py`` builds both, and the ratings; reused from
bench/results/string_ids/<size>/ while the recipe is unchanged). Sizes: ``ml-100k``
(943 users x 1,682 movies, 100,000 ratings) and a scale S of MovieLens 25M (0.2: 32,508
users x 26,406 movies, 5,000,019 ratings, the sizes of ``bench/make_synthetic.py
--scale 0.2``; the ratings are drawn by catalog_scale's generator).

Its string twin is the same export with the mapping rewritten: keys ``u-<id>`` and
``tt<id:07d>`` (titles too), ``id_types`` string for both sides, ``columns``
customer_id / sku, and ``movierec.mapping_sha256`` updated in model.onnx and
catalog.onnx (and catalog.onnx's ``movierec.model_sha256``). The inputs are written
twice the same way: integer IDs under user_id / movie_id, strings under customer_id /
sku, same rows, same row groups.

Runs, integer and string alternating, best of ``--repeat``:

* pairs: ``rec-score RATINGS OUT.parquet`` (every rating as a pair, Parquet in and out);
* catalog: ``rec-score USERS OUT.parquet --all-movies --exclude RATINGS`` (top-10 of
  every user, every rating excluded).

Each string table must equal the integer one with the IDs mapped back (ratings bit for
bit). The bar: string within 1.5x of integer in both modes. Also, in this process:

* ``load_artifacts`` of a 162,541-user x 59,047-movie mapping (the exporter's compact
  layout) with integer and with string keys (``--skip-load`` leaves it out);
* one lookup of 65,536 string IDs (1% unknown) against 32,508, 162,541 and 1,000,000
  IDs: ``pyarrow.compute.index_in`` against the hash table of ``StringIndex``, and the
  integer lookup (``IdMap``, dense table) beside them (``--skip-lookup``).

Writes bench/results/string_ids.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import catalog_scale as cs  # noqa: E402  (bench/ on sys.path)
from _common import REPO, RESULTS, print_table  # noqa: E402

from movierec.serve_batch import contract  # noqa: E402

#: (users, movies, ratings) of the named sizes.
NAMED = {"ml-100k": (943, 1_682, 100_000)}
#: The bar of issue 19: string IDs within this factor of integer IDs.
BAR = 1.5
#: The string twin's ID columns and ID templates.
STRING_COLUMNS = {"user": "customer_id", "movie": "sku"}
USER_PREFIX, MOVIE_PREFIX, MOVIE_DIGITS = "u-", "tt", 7
#: The full MovieLens-25M mapping of the load_artifacts measurement.
FULL_USERS, FULL_MOVIES = 162_541, 59_047


# --- the model and its inputs -------------------------------------------------------------


def build_size(name: str, folder: Path, cpus) -> dict:
    """Checkpoint, users, ratings and the integer export of one size (reused)."""
    if name in NAMED:
        info = build_named(folder, *NAMED[name])
    else:
        info = cs.build_inputs(folder, float(name))
    art = folder / "art_int"
    stamp = art / "tree.txt"
    tree = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if not stamp.is_file() or stamp.read_text().strip() != tree:
        shutil.rmtree(art, ignore_errors=True)  # export again at every new commit
    ran = cs.export(cs.child_env(None), folder / "ckpt", art, cpus)
    stamp.write_text(tree + "\n")
    if ran is not None:
        print(f"  rec-export: {ran.seconds:.1f} s", flush=True)
    return info


def build_named(folder: Path, n_users: int, n_movies: int, n_ratings: int) -> dict:
    """catalog_scale's data and model at fixed sizes (its build_inputs takes a scale)."""
    stamp = folder / "recipe.json"
    want = {"sizes": [n_users, n_movies, n_ratings], "recipe": cs.RECIPE, "version": 1}
    if stamp.is_file() and json.loads(stamp.read_text()) == json.loads(json.dumps(want)):
        return want
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "ckpt").mkdir(parents=True)
    rng = np.random.default_rng(cs.RECIPE["seed"])
    user_ids = np.arange(1, n_users + 1, dtype=np.int64)
    movie_ids, popularity = cs.movie_ids_and_popularity(n_movies, rng)
    keys = cs.make_ratings(n_users, popularity, n_ratings, rng)
    cs.write_ratings(folder / "ratings.parquet", keys, user_ids, movie_ids, rng)
    pq.write_table(pa.table({"user_id": user_ids}), folder / "users.parquet")
    model = cs.build_model(n_users, n_movies, popularity, cs.RECIPE["seed"])
    cs.save_model_checkpoint(
        folder / "ckpt" / "checkpoint.pt", model, user_ids, movie_ids, keys, rng
    )
    stamp.write_text(json.dumps(want))
    return want


def user_text(ids: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(USER_PREFIX, pc.cast(ids, pa.string()), "")


def movie_text(ids: pa.Array) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(ids, pa.string()), width=MOVIE_DIGITS, padding="0")
    return pc.binary_join_element_wise(MOVIE_PREFIX, digits, "")


def string_inputs(folder: Path) -> None:
    """users_str.parquet and ratings_str.parquet: the same rows and row groups, IDs as
    strings under the string twin's column names."""
    out = folder / "ratings_str.parquet"
    if out.exists() and (folder / "users_str.parquet").exists():
        return
    src = pq.ParquetFile(folder / "ratings.parquet")
    schema = pa.schema(
        [(STRING_COLUMNS["user"], pa.string()), (STRING_COLUMNS["movie"], pa.string())]
        + [(f.name, f.type) for f in src.schema_arrow if f.name not in ("user_id", "movie_id")]
    )
    tmp = out.with_name(out.name + ".partial")
    with pq.ParquetWriter(tmp, schema) as writer:
        for g in range(src.num_row_groups):
            t = src.read_row_group(g)
            rest = [t.column(n) for n in schema.names[2:]]
            columns = [user_text(t.column("user_id")), movie_text(t.column("movie_id")), *rest]
            writer.write_table(pa.table(columns, schema=schema))
    tmp.replace(out)
    users = pq.read_table(folder / "users.parquet").column("user_id")
    pq.write_table(
        pa.table({STRING_COLUMNS["user"]: user_text(users)}), folder / "users_str.parquet"
    )


def string_twin(src: Path, dst: Path) -> None:
    """The export at ``src`` with its mapping rewritten with string keys (see above)."""
    import onnx

    from movierec.export.mapping import encode_mapping

    dst.mkdir(parents=True, exist_ok=True)
    mapping = json.loads((src / contract.MAPPING_FILE).read_text())

    def user_key(k: str) -> str:
        return f"{USER_PREFIX}{int(k)}"

    def movie_key(k: str) -> str:
        return f"{MOVIE_PREFIX}{int(k):0{MOVIE_DIGITS}d}"

    fallback = mapping[contract.MAPPING_FALLBACK]
    for obj, key in (
        (mapping, contract.MAPPING_USER_INDEX),
        (fallback, contract.FALLBACK_USER_MEAN),
    ):
        obj[key] = {user_key(k): v for k, v in obj[key].items()}
    for obj, key in (
        (mapping, contract.MAPPING_MOVIE_INDEX),
        (fallback, contract.FALLBACK_MOVIE_MEAN),
        (mapping, contract.MAPPING_TITLES),
    ):
        obj[key] = {movie_key(k): v for k, v in (obj.get(key) or {}).items()}
    mapping[contract.MAPPING_ID_TYPES] = {"user": "string", "movie": "string"}
    mapping[contract.MAPPING_COLUMNS] = dict(STRING_COLUMNS)
    data, mapping_sha = encode_mapping(mapping)
    (dst / contract.MAPPING_FILE).write_bytes(data)
    model = onnx.load(str(src / contract.MODEL_FILE))
    set_metadata(model, {contract.META_MAPPING_SHA256: mapping_sha})
    onnx.save(model, str(dst / contract.MODEL_FILE))
    model_sha = hashlib.sha256((dst / contract.MODEL_FILE).read_bytes()).hexdigest()
    if (src / contract.CATALOG_FILE).exists():
        catalog = onnx.load(str(src / contract.CATALOG_FILE))
        set_metadata(
            catalog,
            {contract.META_MAPPING_SHA256: mapping_sha, contract.META_MODEL_SHA256: model_sha},
        )
        onnx.save(catalog, str(dst / contract.CATALOG_FILE))


def set_metadata(model, values: dict[str, str]) -> None:
    for prop in model.metadata_props:
        if prop.key in values:
            prop.value = values[prop.key]


# --- runs ---------------------------------------------------------------------------------


def rec_score(args: list, cpus, threads: int) -> cs.Run:
    argv = [sys.executable, "-m", "movierec.serve_batch", *map(str, args)]
    return cs.Run(argv + ["--threads", str(threads), "--quiet"], cs.child_env(None), cpus)


def as_integers(table: pa.Table) -> pa.Table:
    """A string twin's table with its IDs mapped back (u-<id> -> <id>, tt<id> -> <id>)."""
    user, movie = STRING_COLUMNS["user"], STRING_COLUMNS["movie"]
    users = pc.cast(pc.utf8_slice_codeunits(table.column(user), len(USER_PREFIX)), pa.int64())
    movies = pc.cast(pc.utf8_slice_codeunits(table.column(movie), len(MOVIE_PREFIX)), pa.int64())
    table = table.set_column(table.schema.get_field_index(user), "user_id", users)
    return table.set_column(table.schema.get_field_index(movie), "movie_id", movies)


def same(int_out: Path, str_out: Path, sort: bool) -> bool:
    """The string table equals the integer one, IDs mapped back; catalog tables sorted
    by (user, rank) first: "u-10" sorts before "u-9", 10 after 9."""
    a, b = pq.read_table(int_out), as_integers(pq.read_table(str_out))
    if sort:
        keys = [("user_id", "ascending"), ("rank", "ascending")]
        a, b = a.sort_by(keys), b.sort_by(keys)
    # columns compared one by one: the mapped-back ID fields differ in nullability only
    return a.column_names == b.column_names and all(
        a.column(c).equals(b.column(c)) for c in a.column_names
    )


def measure(size: str, folder: Path, repeat: int, threads: int, cpus) -> list[dict]:
    art = {"int": folder / "art_int", "string": folder / "art_str"}
    inputs = {
        "int": (folder / "ratings.parquet", folder / "users.parquet"),
        "string": (folder / "ratings_str.parquet", folder / "users_str.parquet"),
    }
    modes = {
        "pairs": lambda kind, out: [inputs[kind][0], out, "--artifacts", art[kind]],
        "catalog": lambda kind, out: [
            inputs[kind][1],
            out,
            "--all-movies",
            "--exclude",
            inputs[kind][0],
            "--artifacts",
            art[kind],
        ],
    }
    results = []
    for mode, argv in modes.items():
        runs: dict[str, list] = {"int": [], "string": []}
        outs = {k: folder / f"out_{mode}_{k}.parquet" for k in runs}
        for _ in range(repeat):
            for kind in runs:  # alternating, so both see the same load
                load = os.getloadavg()[0]
                run = rec_score(argv(kind, outs[kind]), cpus, threads)
                runs[kind].append((run.seconds, run.peak_rss_mib, load))
        best = {k: min(v) for k, v in runs.items()}
        equal = same(outs["int"], outs["string"], sort=mode == "catalog")
        ratio = best["string"][0] / best["int"][0]
        manifest = json.loads(Path(str(outs["int"]) + ".manifest.json").read_text())
        results.append(
            {
                "size": size,
                "mode": mode,
                "rows_read": manifest["rows_read"],
                "rows_written": manifest["rows_written"],
                "int_seconds": best["int"][0],
                "string_seconds": best["string"][0],
                "ratio": ratio,
                "int_peak_rss_mib": best["int"][1],
                "string_peak_rss_mib": best["string"][1],
                "runs": {k: [list(r) for r in v] for k, v in runs.items()},
                "tables_equal": equal,
                "within_bar": ratio <= BAR,
            }
        )
        print(
            f"  {mode}: int {best['int'][0]:.2f} s, string {best['string'][0]:.2f} s "
            f"({ratio:.2f}x), tables equal: {equal}",
            flush=True,
        )
    return results


# --- load_artifacts at MovieLens-25M size -------------------------------------------------


def full_size_mappings(folder: Path) -> dict[str, Path]:
    """Integer and string mappings of 162,541 users x 59,047 movies in the exporter's
    layout, each beside a tiny model.onnx that records its hash."""
    from onnx import TensorProto, helper, numpy_helper

    from movierec.export.mapping import encode_mapping

    rng = np.random.default_rng(0)
    users = np.arange(1, FULL_USERS + 1)
    movies = np.sort(rng.choice(np.arange(1, 209_172), FULL_MOVIES, replace=False))
    user_means = np.round(rng.uniform(1, 5, FULL_USERS), 6).tolist()
    movie_means = np.round(rng.uniform(1, 5, FULL_MOVIES), 6).tolist()
    folders = {}
    for kind in ("int", "string"):
        ukeys = [f"u-{u}" if kind == "string" else str(u) for u in users.tolist()]
        mkeys = [f"tt{m:07d}" if kind == "string" else str(m) for m in movies.tolist()]
        mapping = {
            contract.MAPPING_FORMAT_VERSION: contract.FORMAT_VERSION,
            contract.MAPPING_RATING_SCALE: {"min": 0.5, "max": 5.0},
            contract.MAPPING_USER_INDEX: {k: i for i, k in enumerate(ukeys)},
            contract.MAPPING_MOVIE_INDEX: {k: i for i, k in enumerate(mkeys)},
            contract.MAPPING_FALLBACK: {
                contract.FALLBACK_GLOBAL_MEAN: 3.5,
                contract.FALLBACK_USER_MEAN: dict(zip(ukeys, user_means, strict=True)),
                contract.FALLBACK_MOVIE_MEAN: dict(zip(mkeys, movie_means, strict=True)),
                contract.FALLBACK_DAMPING: 5.0,
            },
            contract.MAPPING_TITLES: {k: f"Movie {k}" for k in mkeys},
        }
        if kind == "string":
            mapping[contract.MAPPING_ID_TYPES] = {"user": "string", "movie": "string"}
        data, sha = encode_mapping(mapping)
        out = folder / kind
        out.mkdir(parents=True, exist_ok=True)
        (out / contract.MAPPING_FILE).write_bytes(data)
        batch = [contract.BATCH_AXIS]
        graph = helper.make_graph(
            [
                helper.make_node("Cast", [contract.INPUT_USER], ["u"], to=TensorProto.FLOAT),
                helper.make_node("Clip", ["u", "lo", "hi"], [contract.OUTPUT_RATING]),
            ],
            "tiny",
            [
                helper.make_tensor_value_info(contract.INPUT_USER, TensorProto.INT64, batch),
                helper.make_tensor_value_info(contract.INPUT_MOVIE, TensorProto.INT64, batch),
            ],
            [helper.make_tensor_value_info(contract.OUTPUT_RATING, TensorProto.FLOAT, batch)],
            initializer=[
                numpy_helper.from_array(np.array(0.5, np.float32), "lo"),
                numpy_helper.from_array(np.array(5.0, np.float32), "hi"),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        helper.set_model_props(
            model,
            {
                contract.META_FORMAT_VERSION: str(contract.FORMAT_VERSION),
                contract.META_MAPPING_SHA256: sha,
                contract.META_RATING_MIN: "0.5",
                contract.META_RATING_MAX: "5.0",
            },
        )
        import onnx

        onnx.save(model, str(out / contract.MODEL_FILE))
        folders[kind] = out
    return folders


def measure_load(repeat: int) -> dict:
    """load_artifacts of the two full-size mappings in this process, alternating; best
    wall and CPU seconds of each."""
    from movierec.serve_batch import load_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        folders = full_size_mappings(Path(tmp))
        sizes = {k: (f / contract.MAPPING_FILE).stat().st_size for k, f in folders.items()}
        times: dict[str, list] = {k: [] for k in folders}
        for _ in range(repeat):
            for kind, folder in folders.items():
                w0, c0 = time.perf_counter(), time.process_time()
                arts = load_artifacts(
                    folder / contract.MODEL_FILE, folder / contract.MAPPING_FILE, threads=1
                )
                times[kind].append((time.perf_counter() - w0, time.process_time() - c0))
                assert len(arts.users) == FULL_USERS and len(arts.movies) == FULL_MOVIES
                assert arts.id_types["user"] == kind
    best = {k: min(v) for k, v in times.items()}
    return {
        "users": FULL_USERS,
        "movies": FULL_MOVIES,
        "mapping_bytes": sizes,
        "wall_seconds": {k: v[0] for k, v in best.items()},
        "cpu_seconds": {k: v[1] for k, v in best.items()},
        "runs": times,
    }


def measure_lookups(repeat: int) -> list[dict]:
    """Milliseconds per lookup of 65,536 IDs, best of ``repeat`` x 5, one core."""
    from movierec.serve_batch._idmap import build_idmap
    from movierec.serve_batch._string_index import StringIndex

    def best(fn, arg) -> float:
        times = []
        for _ in range(5 * repeat):
            t0 = time.perf_counter()
            fn(arg)
            times.append(time.perf_counter() - t0)
        return min(times) * 1e3

    rng = np.random.default_rng(2)
    rows = []
    for n in (32_508, FULL_USERS, 1_000_000):
        keys = pa.array([f"u-{i}" for i in range(1, n + 1)])
        ids = keys.take(pc.sort_indices(keys))
        t0 = time.perf_counter()
        table = StringIndex(ids, table_from=1)
        build = time.perf_counter() - t0
        plain = StringIndex(ids, table_from=n + 1)
        probe_ints = rng.integers(1, int(n * 1.01) + 1, 1 << 16)
        probe = pa.array([f"u-{i}" for i in probe_ints.tolist()])
        assert [a.tolist() for a in table.positions(probe)] == [
            a.tolist() for a in plain.positions(probe)
        ]
        idmap = build_idmap({str(i): i - 1 for i in range(1, n + 1)}, {}, 3.0)
        rows.append(
            {
                "ids": n,
                "index_in_ms": best(plain.positions, probe),
                "hash_table_ms": best(table.positions, probe),
                "hash_table_build_ms": build * 1e3,
                "int_dense_ms": best(idmap.lookup, probe_ints),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="ml-100k,0.2", help="ml-100k and/or scales of ML-25M")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; best kept")
    parser.add_argument("--threads", type=int, default=2, help="rec-score --threads")
    parser.add_argument("--cpus", default=None, help="pin the children to these CPUs, e.g. 0,1")
    parser.add_argument("--skip-load", action="store_true", help="no load_artifacts figures")
    parser.add_argument("--skip-lookup", action="store_true", help="no lookup figures")
    args = parser.parse_args()
    cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else None
    cs.check_import_root(cs.child_env(None), REPO)
    results: dict = {"threads": args.threads, "repeat": args.repeat, "bar": BAR, "sizes": []}
    rows = []
    for size in args.sizes.split(","):
        folder = RESULTS / "string_ids" / (size if size in NAMED else f"S{float(size):g}")
        t0 = time.perf_counter()
        info = build_size(size, folder, cpus)
        string_inputs(folder)
        string_twin(folder / "art_int", folder / "art_str")
        n_users, n_movies, n_ratings = info["sizes"]
        print(
            f"{size}: {n_users:,} users x {n_movies:,} movies, {n_ratings:,} ratings "
            f"(inputs ready in {time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
        for r in measure(size, folder, args.repeat, args.threads, cpus):
            r["users"], r["movies"] = n_users, n_movies
            results["sizes"].append(r)
            rows.append(r)
    if not args.skip_load:
        results["load_artifacts"] = load = measure_load(args.repeat)
        print(
            f"load_artifacts {FULL_USERS:,} x {FULL_MOVIES:,}: int "
            f"{load['wall_seconds']['int']:.3f} s, string {load['wall_seconds']['string']:.3f} s",
            flush=True,
        )
    if not args.skip_lookup:
        results["lookups"] = measure_lookups(args.repeat)
    print()
    print(
        f"{'size':>8} {'mode':>8} {'rows':>10} {'int s':>8} {'string s':>9} {'ratio':>6} "
        f"{'int MiB':>8} {'str MiB':>8} {'equal':>6} {'bar':>5}"
    )
    for r in rows:
        print(
            f"{r['size']:>8} {r['mode']:>8} {r['rows_read']:>10,} {r['int_seconds']:>8.2f} "
            f"{r['string_seconds']:>9.2f} {r['ratio']:>5.2f}x {r['int_peak_rss_mib']:>8.0f} "
            f"{r['string_peak_rss_mib']:>8.0f} {str(r['tables_equal']):>6} "
            f"{'ok' if r['within_bar'] else 'MISS':>5}"
        )
    if "load_artifacts" in results:
        load = results["load_artifacts"]
        print_table(
            [
                (
                    f"load_artifacts, {kind} IDs",
                    f"{load['wall_seconds'][kind]:.3f} s wall, "
                    f"{load['cpu_seconds'][kind]:.3f} s CPU "
                    f"({load['mapping_bytes'][kind] / 1e6:.1f} MB mapping)",
                )
                for kind in ("int", "string")
            ]
        )
    if "lookups" in results:
        print(
            f"\n{'lookup of 65,536 IDs in':>24} {'index_in':>9} {'hash table':>11} "
            f"{'(built in)':>11} {'int dense':>10}"
        )
        for r in results["lookups"]:
            print(
                f"{r['ids']:>18,} IDs {r['index_in_ms']:>7.2f} ms {r['hash_table_ms']:>8.2f} ms "
                f"{r['hash_table_build_ms']:>8.1f} ms {r['int_dense_ms']:>7.2f} ms"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "string_ids.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'string_ids.json'}")
    if not all(r["tables_equal"] for r in rows):
        raise SystemExit("a string table differs from the integer one")


if __name__ == "__main__":
    main()
