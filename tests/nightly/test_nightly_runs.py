"""rec-nightly end to end on small generated data, one home folder through its nights:

1. the first run publishes (nothing in service to compare with);
2. a second run publishes a new version: ``current`` and ``latest.parquet`` switch;
3. a deliberately worse candidate is refused (exit 3): nothing changes, it is kept as
   ``rejected-VERSION``;
4. a ratings file cut to 60% of its rows is refused by the data gate (exit 3) before
   any training: nothing changes;
5. ``rollback`` puts the first version back in service;
6. a run is SIGKILLed half way (in its export), after a second run started meanwhile
   found the lock held (exit 75): the service is untouched;
7. the next run compares its candidate with the first version (in service since the
   rollback), succeeds, sweeps what the killed run left, and ``--keep 1`` prunes.

Every run writes the same ``--metrics-file``, whose text is kept after each. The runs
share one fixture (each takes seconds of training and export); the tests assert on what
it recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from movierec.nightly.cli import cli
from tests.support import TINY_ARGS, WORSE_ARGS, link, run_nightly_args, run_nightly_cli

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
    metrics: str = ""


def snapshot(home: Path, code: int, err: str, metrics: Path | None = None) -> Night:
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
    if metrics is not None and metrics.exists():
        night.metrics = metrics.read_text()
    return night


def truncated_copy(data: Path, folder: Path, share: float) -> Path:
    """The data folder with its ratings file cut to its first ``share`` of rows (an
    export that died half way)."""
    shutil.copytree(data, folder)
    lines = (folder / "u.data").read_text().splitlines(keepends=True)
    (folder / "u.data").write_text("".join(lines[: int(len(lines) * share)]))
    return folder


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
    prom = tmp_path_factory.mktemp("textfile") / "movierec.prom"
    watch = ["--metrics-file", str(prom)]
    out: dict = {"data": data, "home": home, "prom": prom}

    def night(*args, quiet: bool = True, folder: Path = data) -> Night:
        return snapshot(home, *run_nightly_cli(folder, home, *args, *watch, quiet=quiet), prom)

    out["first"] = night("--top-k", str(TOP_K), quiet=False)
    out["first_table"] = (home / "recommendations" / "latest.parquet").resolve().read_bytes()
    out["second"] = night("--top-k", str(TOP_K), "--titles")
    table = home / "recommendations" / "latest.parquet"
    out["second_table"] = pq.read_table(table)
    folder = home / "models" / "current"
    out["second_files"] = sorted(p.name for p in folder.iterdir())
    out["second_metrics"] = json.loads((folder / "metrics.json").read_text())
    before = table.read_bytes()
    out["worse"] = night(*WORSE_ARGS)
    out["table_unchanged_after_worse"] = table.read_bytes() == before
    # 4. tonight's export died at 60%: refused before training
    cut = truncated_copy(data, tmp_path_factory.mktemp("cut") / "ml-100k", 0.6)
    models_before = sorted(p.name for p in (home / "models").iterdir())
    out["truncated"] = night(folder=cut)
    out["unchanged_after_truncated"] = (
        table.read_bytes() == before
        and sorted(p.name for p in (home / "models").iterdir()) == models_before
    )
    # 5. back to the first version
    out["rollback"] = snapshot(
        home, *run_nightly_args(["rollback", "--home", str(home), *watch, "--quiet"]), prom
    )
    status = CliRunner().invoke(cli, ["status", "--home", str(home), "--json"])
    assert status.exit_code == 0, status.output
    out["status"] = json.loads(status.output)
    out["status_text"] = CliRunner().invoke(cli, ["status", "--home", str(home)]).output
    before = out["table_after_rollback"] = table.read_bytes()

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
    # 7. the next night
    out["next"] = night("--keep", "1")
    return out


def test_first_run_publishes_and_says_so_in_one_line(nights) -> None:
    first = nights["first"]
    assert first.code == 0, first.err
    v = first.version
    assert first.current == v and first.latest == f"{v}.parquet"
    assert first.models == [v, "current"]
    assert first.report["status"] == "published"
    assert first.report["gate"]["decision"] == "first"
    *_, summary, last = first.err.splitlines()
    assert summary.startswith(f"{v} published in ") and "gate first" in summary
    assert "data gate first" in summary and "coverage " in summary
    assert last == f"{v} rec-nightly exit 0 (done)"
    assert "np.float64" not in first.err  # log lines print plain numbers
    assert "rank mix by validation NDCG@10: {0: " in first.err
    # every line of the log, training's included, starts with the version
    assert all(line.startswith(f"{v} ") for line in first.err.splitlines())
    assert first.report["exit_code"] == 0


def test_second_run_switches_current_and_latest(nights) -> None:
    first, second = nights["first"], nights["second"]
    assert second.code == 0, second.err
    summary, last = second.err.splitlines()  # --quiet: the summary and the exit status
    assert summary.startswith(f"{second.version} published in ")
    assert last == f"{second.version} rec-nightly exit 0 (done)"
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
    # small data refits from scratch for the best epoch count (refit.default_start)
    assert metrics["refit"]["from"] == "scratch"
    assert metrics["refit"]["epochs"] == metrics["best_epoch"]
    # the holdout metrics are the evaluation run's (the gate compared these)
    assert metrics["test"]["rmse"] == report["metrics"]["candidate"]["test_rmse"]


def test_reports_record_stages_metrics_gate_and_rows(nights) -> None:
    report = nights["second"].report
    stages = report["stages"]
    assert list(stages) == [
        "load",
        "data_gate",
        "train",
        "refit",
        "export",
        "gate",
        "score",
        "list_quality",
        "publish",
    ]
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
    data = report["data"]
    assert data["ratings"] == 4000 and data["users"] == 80 and data["movies"] <= 100
    assert data["newest_rating_at"].endswith("+00:00")
    assert report["data_gate"]["decision"] == "passed"
    first = nights["first"].report
    assert report["data_gate"]["compared_with"]["counts"] == first["version"]


def test_a_worse_candidate_is_refused_and_nothing_changes(nights) -> None:
    second, worse = nights["second"], nights["worse"]
    assert worse.code == 3
    v = worse.version
    error, last = worse.err.splitlines()
    assert error.startswith(f"{v} Error: {v} refused by the quality gate")
    assert "test RMSE" in error and f"still in service: {second.version}" in error
    assert last == f"{v} rec-nightly exit 3 (refused by a gate, nothing published)"
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
    error, last = err.splitlines()
    label = error.split(" ")[0]  # its own start time: it never got a version
    assert error.startswith(f"{label} Error: {nights['home'] / '.lock'}: another rec-nightly")
    assert f"PID {nights['killed_pid']}" in error and "started 20" in error
    assert last == f"{label} rec-nightly exit 75 (locked by another run)"


def test_a_killed_run_leaves_the_service_untouched(nights) -> None:
    first, killed = nights["first"], nights["killed"]
    assert killed.code == -signal.SIGKILL
    assert (killed.current, killed.latest) == (first.current, first.latest)  # rolled back
    assert nights["table_unchanged_after_kill"]
    assert any(n.endswith(".partial") for n in nights["leftovers"])  # half an export


def test_the_next_run_succeeds_sweeps_and_prunes(nights) -> None:
    second, worse, after = nights["second"], nights["worse"], nights["next"]
    assert after.code == 0, after.err
    v = after.version
    # its candidate was compared with the version the rollback put in service
    first = nights["first"].version
    assert after.report["in_service_before"]["model"] == first
    assert after.report["metrics"]["service"]["version"] == first
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


def test_a_truncated_export_is_refused_before_training(nights) -> None:
    second, cut = nights["second"], nights["truncated"]
    v = cut.version
    assert cut.code == 3
    error, last = cut.err.splitlines()
    assert error.startswith(f"{v} Error: {v} refused by the data gate: ratings 2,400 vs 4,000")
    assert "down 40.0% (a drop of at most 10.0% allowed)" in error
    assert "nothing was trained or published" in error
    assert last == f"{v} rec-nightly exit 3 (refused by a gate, nothing published)"
    assert nights["unchanged_after_truncated"]
    assert (cut.current, cut.latest) == (second.current, second.latest)
    report = cut.report
    assert report["status"] == "refused" and report["exit_code"] == 3
    assert list(report["stages"]) == ["load", "data_gate"]  # no training
    assert report["stages"]["data_gate"]["status"] == "refused"
    gate = report["data_gate"]
    assert gate["decision"] == "refused" and gate["compared_with"]["counts"] == second.version
    ratings = next(c for c in gate["checks"] if c["check"] == "ratings")
    assert ratings == {**ratings, "tonight": 2400, "before": 4000, "passed": False}
    assert report["data"]["ratings"] == 2400


def test_rollback_puts_the_first_version_back_and_status_shows_it(nights) -> None:
    first, second, back = nights["first"], nights["second"], nights["rollback"]
    v = back.version
    assert back.code == 0, back.err
    summary, last = back.err.splitlines()
    assert summary.startswith(f"{v} rolled back to {first.version}: ")
    assert summary.endswith(f"(was {second.version})")
    assert last == f"{v} rec-nightly exit 0 (done)"
    assert (back.current, back.latest) == (first.version, f"{first.version}.parquet")
    assert nights["table_after_rollback"] == nights["first_table"]
    assert back.report["status"] == "rolled-back"
    assert back.report["rollback"] == {
        "from": second.version,
        "to": first.version,
        "table_from": second.version,
    }
    status = nights["status"]
    service = status["in_service"]
    assert service["version"] == first.version and service["links_agree"]
    assert service["published_at"] == first.report["finished_at"]
    assert service["test_rmse"] == first.report["metrics"]["candidate"]["test_rmse"]
    assert service["table"]["rows"] == first.report["recommendations"]["rows"] == 80 * TOP_K
    assert service["table"]["users"] == 80
    assert service["list_quality"]["model"]["coverage"] > 0
    assert status["last_run"]["status"] == "rolled-back" and status["last_run"]["exit_code"] == 0
    assert status["runs"]["published"] == 2 and status["runs"]["refused"] == 2
    # the last run's --keep is 7: the next publish removes nothing
    assert status["next_prune"] == {"keep": 7, "if_the_next_run_publishes": []}
    text = nights["status_text"]
    assert f"in service {first.version}, published " in text
    assert f"last run   {v}: rolled-back, exit 0" in text


def test_list_quality_is_measured_beside_popularity(nights) -> None:
    report = nights["second"].report
    quality = report["list_quality"]
    assert quality["k"] == TOP_K and quality["users"] == 80
    assert quality["catalog_movies"] == report["data"]["movies"]
    assert quality["most_rated_movies"] == 1  # 1% of at most 100 movies
    table = nights["second_table"].to_pandas()
    counts = table.movie_id.value_counts()
    model = quality["model"]
    assert model["movies_in_lists"] == len(counts)
    assert model["coverage"] == pytest.approx(len(counts) / quality["catalog_movies"], abs=1e-6)
    assert model["slots"] == len(table)
    most = int(counts.iloc[0])
    first = int(min(counts.index[counts == most]))  # ties: the lower movie first
    assert quality["top_movies"][0] == {
        "movie": first,
        "title": table.title[table.movie_id == first].iloc[0],
        "lists": most,
    }
    popularity = quality["popularity"]
    assert popularity["slots"] == 80 * TOP_K
    assert 0 <= popularity["gini"] <= 1 and 0 <= popularity["top_1pct_share"] <= 1
    # the same figures in the published model's metrics.json
    assert nights["second_metrics"]["list_quality"] == quality
    samples = report["recommendations"]["samples"]
    assert len(samples) == 5
    for sample in samples:
        rows = table[table.user_id == sample["user"]]
        assert [i["movie"] for i in sample["items"]] == rows.movie_id.tolist()
        assert [i["title"] for i in sample["items"]] == rows.title.tolist()


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_metrics_file_follows_the_nights(nights) -> None:
    second, worse, cut, back = (nights[k] for k in ("second", "worse", "truncated", "rollback"))
    m = metric_samples(second.metrics)
    p = "movierec_nightly_"
    finished = datetime.fromisoformat(second.report["finished_at"]).timestamp()
    assert m[(p + "last_run_timestamp_seconds", ())] == finished
    assert m[(p + "last_success_timestamp_seconds", ())] == finished
    assert m[(p + "last_run_exit_code", ())] == 0
    assert m[(p + "last_run_status", (("status", "published"),))] == 1
    assert m[(p + "last_run_status", (("status", "refused"),))] == 0
    for stage, info in second.report["stages"].items():
        assert m[(p + "stage_seconds", (("stage", stage),))] == info["wall_seconds"]
    rmse = second.report["metrics"]["candidate"]["test_rmse"]
    assert m[(p + "test_rmse", (("model", "candidate"),))] == rmse
    assert m[(p + "test_rmse", (("model", "in_service"),))] == rmse
    assert m[(p + "table_rows", ())] == 80 * TOP_K
    coverage = second.report["list_quality"]["model"]["coverage"]
    assert m[(p + "catalog_coverage", (("model", "in_service"),))] == coverage

    refused = metric_samples(worse.metrics)
    assert refused[(p + "last_run_exit_code", ())] == 3
    assert refused[(p + "last_run_status", (("status", "refused"),))] == 1
    assert refused[(p + "last_success_timestamp_seconds", ())] == finished  # still second's
    assert refused[(p + "test_rmse", (("model", "candidate"),))] > rmse  # the worse one
    assert refused[(p + "test_rmse", (("model", "in_service"),))] == rmse
    gated = metric_samples(cut.metrics)
    assert gated[(p + "last_run_exit_code", ())] == 3
    assert (p + "test_rmse", (("model", "candidate"),)) not in gated  # nothing trained
    rolled = metric_samples(back.metrics)
    assert rolled[(p + "last_run_status", (("status", "rolled-back"),))] == 1
    first_rmse = nights["first"].report["metrics"]["candidate"]["test_rmse"]
    assert rolled[(p + "test_rmse", (("model", "in_service"),))] == first_rmse


def test_every_run_rewrites_the_html_report(nights) -> None:
    from tests.support import assert_self_contained_html

    html = (nights["home"] / "report.html").read_text()
    assert_self_contained_html(html)
    for night in ("first", "second", "worse", "truncated", "rollback", "next"):
        assert nights[night].version in html, night
    assert html.count("<svg") == 5
    assert f"<tr><th>version</th><td>{nights['next'].version}</td></tr>" in html


def test_promtool_accepts_the_metrics_file_of_each_kind_of_night(nights) -> None:
    """``promtool check metrics`` (Debian's prometheus package; skipped where absent) on
    the file after a published, a refused, a data-gate-refused and a rolled-back night."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    for night in ("second", "worse", "truncated", "rollback"):
        text = nights[night].metrics
        assert text, night
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert check.returncode == 0, (night, check.stdout + check.stderr)
