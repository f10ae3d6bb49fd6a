"""rec-nightly end to end on small generated data, one home folder through five nights:

1. the first run publishes (nothing in service to compare with);
2. a second run publishes a new version: ``current`` and ``latest.parquet`` switch;
3. a deliberately worse candidate is refused (exit 3): nothing changes, it is kept as
   ``rejected-VERSION``;
4. a run is SIGKILLed half way (in its export), after a second run started meanwhile
   found the lock held (exit 75): the service is untouched;
5. the next run succeeds, sweeps what the killed run left, and ``--keep 1`` prunes.

The runs share one fixture (each takes seconds of training and export); the tests
assert on what it recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.support import TINY_ARGS, WORSE_ARGS, link, run_nightly_cli

REPO = Path(__file__).resolve().parents[2]
TOP_K = 7


@dataclass
class Night:
    code: int
    err: str
    current: str | None
    latest: str | None
    models: list[str]
    tables: list[str]
    version: str | None = None
    report: dict = field(default_factory=dict)


def snapshot(home: Path, code: int, err: str) -> Night:
    models, recs = home / "models", home / "recommendations"
    night = Night(
        code,
        err,
        link(models / "current"),
        link(recs / "latest.parquet"),
        sorted(p.name for p in models.iterdir()),
        sorted(p.name for p in recs.iterdir()),
    )
    reports = sorted((home / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    if reports:
        night.report = json.loads(reports[-1].read_text())
        night.version = night.report["version"]
    return night


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def nights(synthetic_ml100k, tmp_path_factory) -> dict:
    data = synthetic_ml100k
    home = tmp_path_factory.mktemp("home")
    out: dict = {"data": data, "home": home}
    out["first"] = snapshot(home, *run_nightly_cli(data, home, "--top-k", str(TOP_K), quiet=False))
    out["second"] = snapshot(home, *run_nightly_cli(data, home, "--top-k", str(TOP_K), "--titles"))
    table = home / "recommendations" / "latest.parquet"
    out["second_table"] = pq.read_table(table)
    folder = home / "models" / "current"
    out["second_files"] = sorted(p.name for p in folder.iterdir())
    out["second_metrics"] = json.loads((folder / "metrics.json").read_text())
    before = table.read_bytes()
    out["worse"] = snapshot(home, *run_nightly_cli(data, home, *WORSE_ARGS))
    out["table_unchanged_after_worse"] = table.read_bytes() == before

    # 4. a run killed half way, while another run tries to start
    proc = subprocess.Popen(
        [sys.executable, "-m", "movierec.nightly", "--data", str(data), "--home", str(home)]
        + [*TINY_ARGS, "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lock = home / ".lock"
    wait_for(lambda: f"PID {proc.pid}\n" in lock.read_text(), proc, "it took the lock")
    out["locked"] = run_nightly_cli(data, home)
    out["killed_pid"] = proc.pid
    staging = lambda: [p for p in (home / "models").iterdir() if p.name.endswith(".partial")]  # noqa: E731
    wait_for(lambda: bool(staging()), proc, "its export started")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    out["killed"] = snapshot(home, proc.returncode, proc.stderr.read().decode())
    out["table_unchanged_after_kill"] = table.read_bytes() == before
    out["leftovers"] = [p.name for p in staging()] + [p.name for p in (home / ".work").iterdir()]
    # 5. the next night
    out["next"] = snapshot(home, *run_nightly_cli(data, home, "--keep", "1"))
    return out


def test_first_run_publishes_and_says_so_in_one_line(nights) -> None:
    first = nights["first"]
    assert first.code == 0, first.err
    v = first.version
    assert first.current == v and first.latest == f"{v}.parquet"
    assert first.models == [v, "current"]
    assert first.report["status"] == "published"
    assert first.report["gate"]["decision"] == "first"
    summary = first.err.splitlines()[-1]
    assert summary.startswith(f"rec-nightly {v}: published in ") and "gate first" in summary
    assert "np.float64" not in first.err  # log lines print plain numbers
    assert "rank mix by validation NDCG@10: {0: " in first.err


def test_second_run_switches_current_and_latest(nights) -> None:
    first, second = nights["first"], nights["second"]
    assert second.code == 0, second.err
    assert second.err.count("\n") == 1  # --quiet: the summary line alone
    assert second.version > first.version
    assert second.current == second.version and second.latest == f"{second.version}.parquet"
    assert second.models == [first.version, second.version, "current"]  # --keep 7
    assert second.report["gate"]["decision"] == "passed"
    assert second.report["metrics"]["service"]["version"] == first.version
    assert second.report["in_service_before"]["model"] == first.version


def test_the_table_has_every_user_k_rows_and_no_rated_movie(nights) -> None:
    from movierec.train.data import load_movielens

    data = load_movielens(nights["data"])
    table = nights["second_table"].to_pandas()
    assert list(table.columns) == [
        "user_id",
        "rank",
        "movie_id",
        "predicted_rating",
        "score",
        "cold_start",
        "title",
    ]
    ratings = data.ratings
    assert set(table.user_id) == set(ratings.user_id)
    assert (table.groupby("user_id").size() == TOP_K).all()
    ranks = table.groupby("user_id")["rank"].apply(list)
    assert all(r == list(range(1, TOP_K + 1)) for r in ranks)
    rated = set(zip(ratings.user_id, ratings.movie_id, strict=True))
    recommended = set(zip(table.user_id, table.movie_id, strict=True))
    assert not rated & recommended  # every rating excluded, test split's too
    for _, rows in table.groupby("user_id"):
        assert (np.diff(rows.score.to_numpy()) <= 0).all()
    titles = dict(zip(data.movies.movie_id, data.movies.title, strict=True))
    assert table.title.tolist() == [titles[m] for m in table.movie_id]
    assert not table.cold_start.any()


def test_published_version_holds_the_model_and_the_refit_metrics(nights) -> None:
    assert nights["second_files"] == [
        "catalog.onnx",
        "export_report.json",
        "id_mapping.json",
        "metrics.json",
        "model.onnx",
        "training_curves.png",
    ]
    metrics, report = nights["second_metrics"], nights["second"].report
    assert metrics["refit"]["refit"] is True
    assert metrics["refit"]["ratings"] == report["data"]["ratings"]
    assert metrics["refit"]["epochs"] == metrics["best_epoch"]
    # the holdout metrics are the evaluation run's (the gate compared these)
    assert metrics["test"]["rmse"] == report["metrics"]["candidate"]["test_rmse"]


def test_reports_record_stages_metrics_gate_and_rows(nights) -> None:
    report = nights["second"].report
    stages = report["stages"]
    assert list(stages) == ["train", "refit", "export", "gate", "score", "publish"]
    for name, stage in stages.items():
        assert stage["status"] == "done", name
        assert stage["wall_seconds"] >= 0 and stage["peak_rss_mib"] > 0
    candidate = report["metrics"]["candidate"]
    assert candidate["refit"] is True and candidate["refit_ratings"] == report["data"]["ratings"]
    assert 0 < candidate["test_rmse"] < 2 and 0 <= candidate["test_ndcg@10"] <= 1
    rows = report["recommendations"]
    assert rows["rows"] == report["data"]["users"] * TOP_K
    assert rows["excluded_pairs"] == report["data"]["ratings"]
    assert report["wall_seconds"] >= sum(s["wall_seconds"] for s in stages.values())


def test_a_worse_candidate_is_refused_and_nothing_changes(nights) -> None:
    second, worse = nights["second"], nights["worse"]
    assert worse.code == 3
    lines = worse.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {worse.version} refused by the")
    assert "test RMSE" in lines[0] and f"still in service: {second.version}" in lines[0]
    assert (worse.current, worse.latest) == (second.current, second.latest)
    assert nights["table_unchanged_after_worse"]
    assert f"rejected-{worse.version}" in worse.models
    assert f"{worse.version}.parquet" not in worse.tables
    report = worse.report
    assert report["status"] == "refused" and report["gate"]["decision"] == "refused"
    assert report["stages"]["gate"]["status"] == "refused" and "score" not in report["stages"]
    rmse = next(c for c in report["gate"]["checks"] if c["metric"] == "test RMSE")
    assert not rmse["passed"] and rmse["candidate"] > rmse["service"] + 0.01


def test_a_second_run_while_one_holds_the_lock_exits_75(nights) -> None:
    code, err = nights["locked"]
    assert code == 75
    assert err.startswith(f"Error: {nights['home'] / '.lock'}: another rec-nightly run holds")
    assert f"PID {nights['killed_pid']}" in err and "started 20" in err
    assert len(err.splitlines()) == 1


def test_a_killed_run_leaves_the_service_untouched(nights) -> None:
    second, killed = nights["second"], nights["killed"]
    assert killed.code == -signal.SIGKILL
    assert (killed.current, killed.latest) == (second.current, second.latest)
    assert nights["table_unchanged_after_kill"]
    assert any(n.endswith(".partial") for n in nights["leftovers"])  # half an export


def test_the_next_run_succeeds_sweeps_and_prunes(nights) -> None:
    second, worse, after = nights["second"], nights["worse"], nights["next"]
    assert after.code == 0, after.err
    v = after.version
    assert after.current == v and after.latest == f"{v}.parquet"
    # --keep 1: older versions' models and tables are gone; the refused one stays (the
    # newest refused); every run's report is kept
    assert after.models == [v, "current", f"rejected-{worse.version}"]
    assert after.tables == [f"{v}.parquet", f"{v}.parquet.manifest.json", "latest.parquet"]
    pruned = after.report["pruned"]
    assert nights["first"].version in pruned and second.version in pruned
    assert set(after.report["swept_leftovers"]) >= {
        str(nights["home"] / "models" / n) for n in nights["leftovers"] if n.endswith(".partial")
    }
    home = nights["home"]
    assert not list((home / ".work").iterdir())
    runs = sorted(p.stem for p in (home / "runs").iterdir())
    assert {nights["first"].version, second.version, worse.version, v} <= set(runs)
