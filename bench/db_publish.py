"""Databases (issue 20): publishing speed, per-user query latency, a kill during the load,
reading ratings through ADBC, and rec-nightly --publish on ml-100k, on a real PostgreSQL.

Sections, in one run (each can be skipped):

- publish: a nightly-shaped table (``--users`` x ``--k`` rows) published by
  ``movierec.db.publish_table`` (ADBC bulk load = COPY, index, ANALYZE, view switch),
  beside ``pandas.DataFrame.to_sql`` (SQLAlchemy + psycopg, not project dependencies:
  ``pip install sqlalchemy "psycopg[binary]"`` for this benchmark) plus the same index
  and ANALYZE, on the same server;
- latency: p50/p99 of the application's query
  ``SELECT movie_id, rank, title FROM recommendations WHERE user_id = $1 ORDER BY rank``
  for random users, through psycopg with a prepared statement (as an application would);
- kill: a publish SIGKILLed while its COPY runs: the view stays, no table is left;
- read: a ``--read-rows`` ratings table read by ``read_ratings_table`` against the same
  rows from a Parquet file (best of 3 each), with the types and the fingerprint compared;
- nightly: ``rec-nightly --publish`` on ``--data`` (ml-100k): two runs (the view
  switches) with a reader looping over ``SELECT count(*), count(DISTINCT user_id)`` for
  the whole second run; a gate refusal and a SIGKILLed run, each leaving the view where
  it was; the next run, cleaning up; the password grepped for in every file under the
  home and every output.

The server: ``--uri``, else $MOVIEREC_TEST_PG, else a throwaway one started by
``.ci/pg_server`` with PostgreSQL's default durability (fsync on). Prints a table and
writes bench/results/db_publish.json.

    python bench/db_publish.py                    # everything (about 10 minutes)
    python bench/db_publish.py --skip nightly     # the speed figures only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import REPO, RESULTS, print_table

SECTIONS = ("publish", "latency", "kill", "read", "nightly", "train")
QUERY = "SELECT movie_id, rank, title FROM recommendations WHERE user_id = %s ORDER BY rank"


# --- the server -------------------------------------------------------------------------
class Server:
    """``--uri``, $MOVIEREC_TEST_PG, or a throwaway durable server (stopped at the end)."""

    def __init__(self, uri: str | None) -> None:
        self.folder = None
        self.uri = uri or os.environ.get("MOVIEREC_TEST_PG")
        if self.uri is None:
            env = {**os.environ, "PG_SERVER_DURABLE": "1"}
            out = subprocess.run(
                [str(REPO / ".ci" / "pg_server"), "start"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            self.folder, self.uri = out.stdout.split()

    def stop(self) -> None:
        if self.folder:
            subprocess.run([str(REPO / ".ci" / "pg_server"), "stop", self.folder], check=False)

    def database(self, name: str) -> str:
        """A fresh database ``name`` (dropped first if it exists); its URI."""
        admin(
            self.uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
        )
        base, _, rest = self.uri.rpartition("/")
        return f"{base}/{name}"


def admin(uri: str, *statements: str) -> None:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def query(uri: str, sql: str) -> list[tuple]:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def password_of(uri: str) -> str:
    return uri.split("://")[1].split("@")[0].split(":")[1]


# --- data -------------------------------------------------------------------------------
def nightly_table(path: Path, users: int, k: int, seed: int = 0) -> Path:
    """What rec-nightly --titles writes: user_id, rank, movie_id, predicted_rating, score,
    cold_start, title; sorted by user and rank."""
    rng = np.random.default_rng(seed)
    n = users * k
    movies = rng.integers(1, 60_000, n)
    titles = pa.array([f"Movie number {i} (1999)" for i in range(60_000)])
    table = pa.table(
        {
            "user_id": pa.array(np.repeat(np.arange(1, users + 1), k)),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), users)),
            "movie_id": pa.array(movies),
            "predicted_rating": pa.array(rng.uniform(1, 5, n).astype(np.float32)),
            "score": pa.array(rng.normal(0, 1, n).astype(np.float32)),
            "cold_start": pa.array(np.zeros(n, dtype=bool)),
            "title": titles.take(pa.array(movies)),
        }
    )
    pq.write_table(table, path)
    return path


def ratings_table(path: Path, rows: int, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "user_id": pa.array(rng.integers(1, 160_000, rows)),
            "movie_id": pa.array(rng.integers(1, 60_000, rows)),
            "rating": pa.array((rng.integers(1, 11, rows) / 2).astype(np.float32)),
            "timestamp": pa.array(rng.integers(789_652_009, 1_700_000_000, rows)),
        }
    )
    pq.write_table(table, path)
    return path


# --- sections ---------------------------------------------------------------------------
def bench_publish(server: Server, work: Path, users: int, k: int, to_sql: bool) -> dict:
    from movierec.db import publish_table

    uri = server.database("bench_publish")
    path = nightly_table(work / "recs.parquet", users, k)
    rows = users * k
    t0 = time.perf_counter()
    first = publish_table(uri, "recommendations", "20250101T000000Z", path)
    adbc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    publish_table(uri, "recommendations", "20250102T000000Z", path)
    adbc2_s = time.perf_counter() - t0
    out = {
        "rows": rows,
        "users": users,
        "parquet_mib": round(path.stat().st_size / 2**20, 1),
        "adbc_publish_seconds": [round(adbc_s, 2), round(adbc2_s, 2)],
        "adbc_rows_per_second": round(rows / min(adbc_s, adbc2_s)),
        "table_mib": round(
            query(uri, "SELECT pg_total_relation_size('recommendations_20250102t000000z')")[0][0]
            / 2**20,
            1,
        ),
        "uri": uri,
    }
    assert first.rows == rows
    if to_sql:
        import pandas as pd
        import sqlalchemy

        t0 = time.perf_counter()
        frame = pd.read_parquet(path)
        out["pandas_read_parquet_seconds"] = round(time.perf_counter() - t0, 2)
        engine = sqlalchemy.create_engine(uri.replace("postgresql://", "postgresql+psycopg://"))
        t0 = time.perf_counter()
        frame.to_sql("recs_to_sql", engine, index=False, chunksize=50_000)
        with engine.begin() as conn:
            conn.exec_driver_sql('CREATE INDEX recs_to_sql_user_idx ON recs_to_sql ("user_id")')
            conn.exec_driver_sql("ANALYZE recs_to_sql")
        out["to_sql_seconds"] = round(time.perf_counter() - t0, 2)
        out["to_sql_rows_per_second"] = round(rows / out["to_sql_seconds"])
        engine.dispose()
        del frame
    return out


def bench_latency(uri: str, users: int, n: int) -> dict:
    import psycopg

    rng = np.random.default_rng(7)
    picks = rng.integers(1, users + 1, n).tolist()
    times = []
    with psycopg.connect(uri) as conn, conn.cursor() as cursor:
        for uid in picks[:50]:  # warm: the plan prepared, the index pages in cache
            cursor.execute(QUERY, (uid,), prepare=True)
            cursor.fetchall()
        for uid in picks:
            t0 = time.perf_counter()
            cursor.execute(QUERY, (uid,), prepare=True)
            rows = cursor.fetchall()
            times.append(time.perf_counter() - t0)
            assert len(rows) > 0
        cursor.execute("EXPLAIN " + QUERY, (picks[0],))
        plan = [r[0] for r in cursor.fetchall()]
    ms = np.array(times) * 1000
    return {
        "queries": n,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "plan": plan,
        "client": f"psycopg {psycopg.__version__}, prepared statement, same machine (TCP)",
    }


def bench_kill(uri: str, work: Path) -> dict:
    """SIGKILL a publish while its COPY runs; the view and the tables stay as they were."""
    from movierec.db import published_versions

    before = published_versions(uri, "recommendations")
    tables_before = sorted(
        r[0] for r in query(uri, "SELECT tablename FROM pg_tables WHERE schemaname='public'")
    )
    code = (
        "import sys; from movierec.db import publish_table; "
        "publish_table(sys.argv[1], 'recommendations', '20250103T000000Z', sys.argv[2])"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, uri, str(work / "recs.parquet")])
    deadline, copying = time.monotonic() + 120, False
    while time.monotonic() < deadline and proc.poll() is None:
        active = query(
            uri,
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'COPY %'",
        )[0][0]
        if active:
            copying = True
            time.sleep(0.5)  # well into the load
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    time.sleep(1.0)  # the server notices the dropped connection and aborts its transaction
    after = published_versions(uri, "recommendations")
    tables_after = sorted(
        r[0] for r in query(uri, "SELECT tablename FROM pg_tables WHERE schemaname='public'")
    )
    return {
        "killed_during_copy": copying,
        "exit": proc.returncode,
        "view_before": before[1],
        "view_after": after[1],
        "tables_unchanged": tables_before == tables_after,
        "tables_after": tables_after,
    }


def bench_read(server: Server, work: Path, rows: int) -> dict:
    from movierec.db import fingerprint_table, read_ratings_table

    uri = server.database("bench_read")
    path = ratings_table(work / "ratings.parquet", rows)
    table = pq.read_table(path)
    import adbc_driver_postgresql.dbapi as pg

    t0 = time.perf_counter()
    with pg.connect(uri) as conn, conn.cursor() as cursor:
        cursor.adbc_ingest("ratings", table, mode="create")
        conn.commit()
    load_s = time.perf_counter() - t0
    db_times, file_times = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        read = read_ratings_table(uri, table="ratings")
        db_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        from_file = pq.read_table(path)
        file_times.append(time.perf_counter() - t0)
    return {
        "rows": rows,
        "parquet_mib": round(path.stat().st_size / 2**20, 1),
        "load_seconds": round(load_s, 2),
        "adbc_read_seconds": [round(t, 2) for t in db_times],
        "parquet_read_seconds": [round(t, 3) for t in file_times],
        "adbc_rows_per_second": round(rows / min(db_times)),
        "parquet_rows_per_second": round(rows / min(file_times)),
        "same_schema": read.table.schema == from_file.schema,
        "same_rows": read.table.equals(from_file),
        "same_fingerprint": read.fingerprint == f"database:{fingerprint_table(from_file)}",
    }


def bench_train(server: Server, work: Path, folder: Path) -> dict:
    """``rec-train --data URI --table ratings`` against ``rec-train --data ratings.parquet``
    on the same rows (a MovieLens CSV folder's ratings, e.g. bench/make_synthetic.py's
    scale 0.2: 5M rows), each a process of its own: the same model and metrics?"""
    import adbc_driver_postgresql.dbapi as pg
    import pyarrow.csv as pacsv

    uri = server.database("bench_train")
    raw = pacsv.read_csv(folder / "ratings.csv")
    table = pa.table(
        {
            "user_id": raw["userId"].cast(pa.int64()),
            "movie_id": raw["movieId"].cast(pa.int64()),
            "rating": raw["rating"].cast(pa.float32()),
            "timestamp": raw["timestamp"].cast(pa.int64()),
        }
    )
    path = work / "train_ratings.parquet"
    pq.write_table(table, path)
    with pg.connect(uri) as conn, conn.cursor() as cursor:
        cursor.adbc_ingest("ratings", table, mode="create")
        conn.commit()
    runs = {}
    for name, source in (("database", [uri, "--table", "ratings"]), ("parquet", [str(path)])):
        out = work / f"train-{name}"
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "movierec.train",
                "--data",
                *source,
                "--artifacts",
                str(out),
                "--quiet",
            ],
            check=True,
        )
        metrics = json.loads((out / "metrics.json").read_text())
        runs[name] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "test_rmse": metrics["test"]["rmse"],
            "ndcg@10": metrics["test"]["ndcg@10"],
            "val_rmse": metrics["val"]["rmse"],
            "best_epoch": metrics["best_epoch"],
            "fingerprint": metrics["data"]["fingerprint"],
        }
    a, b = runs["database"], runs["parquet"]
    runs["same_metrics"] = all(a[k] == b[k] for k in ("test_rmse", "ndcg@10", "val_rmse"))
    runs["rows"] = table.num_rows
    return runs


# --- the nightly bars -------------------------------------------------------------------
READER = """
import sys, time, pathlib
import adbc_driver_postgresql.dbapi as pg
uri, stop, out = sys.argv[1], pathlib.Path(sys.argv[2]), open(sys.argv[3], "w")
with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cursor:
    while not stop.exists():
        t0 = time.perf_counter()
        try:
            cursor.execute("SELECT count(*), count(DISTINCT user_id) FROM recommendations")
            n, u = cursor.fetchone()
            out.write(f"{time.time():.3f} {n} {u} {time.perf_counter() - t0:.4f}\\n")
        except Exception as exc:
            words = str(exc).replace("\\n", " ")
            out.write(f"{time.time():.3f} ERROR {type(exc).__name__}: {words}\\n")
out.close()
"""


def nightly(args: list[str], home: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "movierec.nightly", "--home", str(home), *args, "--quiet"]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO)


def bench_nightly(server: Server, work: Path, data: Path) -> dict:
    from movierec.db import published_versions

    uri = server.database("bench_nightly")
    home, logs = work / "home", work / "logs"
    logs.mkdir()
    base = ["--data", str(data), "--titles", "--publish", uri]
    out: dict = {"data": str(data)}

    def run(name: str, *extra: str) -> dict:
        t0 = time.perf_counter()
        proc = nightly([*base, *extra], home, logs / f"{name}.log")
        proc.wait()
        view = published_versions(uri, "recommendations")
        result = {
            "exit": proc.returncode,
            "seconds": round(time.perf_counter() - t0, 1),
            "view": view[1],
            "tables": view[0],
            "last_line": (logs / f"{name}.log").read_text().strip().splitlines()[-1:],
        }
        out[name] = result
        return result

    first = run("first", "--top-k", "20")
    # the second run, with a reader looping for the whole of it
    stop, seen = work / "stop-reader", work / "reader.txt"
    reader = subprocess.Popen([sys.executable, "-c", READER, uri, str(stop), str(seen)])
    time.sleep(1.0)
    second = run("second", "--top-k", "10")
    stop.touch()
    reader.wait()
    lines = seen.read_text().splitlines()
    observed: dict[str, int] = {}
    for line in lines:
        key = " ".join(line.split()[1:3])
        observed[key] = observed.get(key, 0) + 1
    latencies = [float(line.split()[3]) for line in lines if "ERROR" not in line]
    out["reader"] = {
        "queries": len(lines),
        "observed": observed,
        "max_query_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "expected": {"first": "18860 943", "second": "9430 943"},
    }
    # a gate refusal: one epoch at a tiny learning rate
    run("refused", "--top-k", "15", "--epochs", "1", "--lr", "1e-5")
    # a run killed with SIGKILL while its publish transaction is open: a session holding
    # the view (an open transaction that read it) makes the switch wait after the load
    import adbc_driver_postgresql.dbapi as pg

    holder = pg.connect(uri)
    hold = holder.cursor()
    hold.execute("SELECT count(*) FROM recommendations")
    hold.fetchall()  # its AccessShareLock on the view lasts until the transaction ends
    t0 = time.perf_counter()
    proc = nightly([*base, "--top-k", "15"], home, logs / "killed.log")
    deadline, caught = time.monotonic() + 600, None
    while time.monotonic() < deadline and proc.poll() is None:
        rows = query(
            uri,
            "SELECT state, left(query, 60) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND query LIKE '%pg_locks%' AND datname = current_database()",
        )
        if rows:
            caught = rows[0]
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    holder.rollback()
    holder.close()
    time.sleep(1.0)
    view = published_versions(uri, "recommendations")
    home_tables = sorted(p.name for p in (home / "recommendations").iterdir())
    out["killed"] = {
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "caught_in": caught,
        "view": view[1],
        "tables": view[0],
        "leftovers_in_home": [p.name for p in (home / ".work").iterdir()],
        "home_recommendations": home_tables,
    }
    nxt = run("next", "--top-k", "20", "--keep", "2")
    reports = sorted((home / "runs").glob("*.json"))
    out["next"]["swept"] = json.loads(reports[-1].read_text()).get("swept_leftovers")
    out["next"]["database"] = json.loads(reports[-1].read_text()).get("database")
    # the password: in no file under the home, in no output of any run
    secret = password_of(uri).encode()
    files = [p for p in home.rglob("*") if p.is_file()]
    outputs = list(logs.glob("*.log"))
    out["password"] = {
        "files_checked": len(files),
        "outputs_checked": len(outputs),
        "found_in": [str(p) for p in files + outputs if secret in p.read_bytes()],
    }
    out["bars"] = {
        "view_switched": first["view"] != second["view"] and second["exit"] == 0,
        "reader_saw_only_whole_tables": set(observed) <= {"18860 943", "9430 943"}
        and len(observed) == 2,
        "refusal_left_view": out["refused"]["exit"] == 3
        and out["refused"]["view"] == second["view"],
        "kill_left_view": out["killed"]["exit"] == -9 and out["killed"]["view"] == second["view"],
        "next_run_clean": nxt["exit"] == 0 and not out["killed"]["tables"][2:],
        "password_nowhere": not out["password"]["found_in"],
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=None, help="PostgreSQL server to use (any database)")
    parser.add_argument("--users", type=int, default=162_541)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--read-rows", type=int, default=5_000_000)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ml-100k")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    parser.add_argument("--no-to-sql", action="store_true", help="skip pandas.to_sql")
    parser.add_argument(
        "--train-data",
        type=Path,
        default=None,
        help="a MovieLens CSV folder (e.g. make_synthetic --scale 0.2): rec-train from the "
        "database against the Parquet file of the same rows",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "db_publish.json")
    args = parser.parse_args()

    server = Server(args.uri)
    try:
        results: dict = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "server": query(server.uri, "SELECT version()")[0][0],
            "durable": query(server.uri, "SELECT current_setting('fsync')")[0][0],
        }
        with tempfile.TemporaryDirectory(prefix="db-bench-") as tmp:
            work = Path(tmp)
            if "publish" not in args.skip:
                results["publish"] = bench_publish(
                    server, work, args.users, args.k, not args.no_to_sql
                )
                uri = results["publish"].pop("uri")
                if "latency" not in args.skip:
                    results["latency"] = bench_latency(uri, args.users, args.queries)
                if "kill" not in args.skip:
                    results["kill"] = bench_kill(uri, work)
            if "read" not in args.skip:
                results["read"] = bench_read(server, work, args.read_rows)
            if "train" not in args.skip and args.train_data is not None:
                results["train"] = bench_train(server, work, args.train_data)
            if "nightly" not in args.skip and args.data.is_dir():
                (work / "n").mkdir()
                results["nightly"] = bench_nightly(server, work / "n", args.data)
    finally:
        server.stop()
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {args.out}")


def report(r: dict) -> None:
    rows = [("server", f"{r['server'].split(' on ')[0]} (fsync {r['durable']})")]
    if p := r.get("publish"):
        rows.append(("publish rows", f"{p['rows']:,} ({p['users']:,} users)"))
        rows.append(("ADBC publish (COPY+index+ANALYZE+switch)", f"{p['adbc_publish_seconds']} s"))
        if "to_sql_seconds" in p:
            rows.append(("pandas.to_sql + index + ANALYZE", f"{p['to_sql_seconds']} s"))
    if lat := r.get("latency"):
        rows.append(("per-user query p50 / p99", f"{lat['p50_ms']} / {lat['p99_ms']} ms"))
    if k := r.get("kill"):
        rows.append(
            (
                "kill -9 during COPY",
                f"view {k['view_before']} -> {k['view_after']}, "
                f"tables unchanged {k['tables_unchanged']}",
            )
        )
    if rd := r.get("read"):
        rows.append(
            (
                "read ADBC / Parquet",
                f"{rd['adbc_rows_per_second']:,} / {rd['parquet_rows_per_second']:,} rows/s",
            )
        )
        rows.append(
            (
                "read: same schema, rows, fingerprint",
                f"{rd['same_schema']}, {rd['same_rows']}, {rd['same_fingerprint']}",
            )
        )
    if t := r.get("train"):
        for name in ("database", "parquet"):
            m = t[name]
            rows.append(
                (
                    f"rec-train from the {name} ({t['rows']:,} rows)",
                    f"{m['seconds']} s, test RMSE {m['test_rmse']:.6f}, NDCG@10 "
                    f"{m['ndcg@10']:.6f}, best epoch {m['best_epoch']}",
                )
            )
        rows.append(("rec-train: the same metrics", str(t["same_metrics"])))
    if n := r.get("nightly"):
        for name, ok in n["bars"].items():
            rows.append((f"nightly: {name}", str(ok)))
        rows.append(("nightly: reader saw", json.dumps(n["reader"]["observed"])))
    print_table(rows)


if __name__ == "__main__":
    main()
