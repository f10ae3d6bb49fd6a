"""Operating the nightly job without training: the data gate, list quality, status,
rollback, the HTML report, the metrics file, the command group and the cron log lines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from movierec.nightly._data_gate import DataCounts, count_ratings, decide_data
from movierec.nightly._home import Home, switch_link
from movierec.nightly._list_quality import gini, measure_lists, popularity_counts
from movierec.nightly._lock import hold_lock
from movierec.nightly._metrics_file import write_metrics_file
from movierec.nightly._report import render_html_report
from movierec.nightly._rollback import RollbackConfig, roll_back
from movierec.nightly._status import format_status, read_status
from movierec.nightly.cli import cli
from movierec.serve_batch.errors import LockHeld, UsageError
from movierec.train.data import Vocabulary
from movierec.train.split import Part
from tests.support import assert_self_contained_html, run_nightly_args

V1, V2, V3 = "20250301T021500Z", "20250302T021500Z", "20250303T021500Z"


# --- the data gate ------------------------------------------------------------------------
def counts(ratings: int, users: int, movies: int, newest: str | None = None) -> DataCounts:
    return DataCounts(ratings, users, movies, newest)


def run_with(version: str, c: DataCounts) -> dict:
    return {"version": version, "status": "published", "data": c.to_dict()}


def test_count_ratings_counts_distinct_users_and_movies_and_the_newest_time() -> None:
    got = count_ratings(np.array([1, 1, 2]), np.array([5, 6, 5]), np.array([10, 86400, 3]))
    assert got == counts(3, 2, 2, "1970-01-02T00:00:00+00:00")
    assert count_ratings(np.array([1]), np.array([2]), None).newest_rating_at is None


@pytest.mark.parametrize(
    ("tonight", "decision", "failed"),
    [
        (counts(1000, 100, 50, "2025-03-01T00:00:00+00:00"), "passed", []),
        (counts(910, 100, 50, "2025-03-01T00:00:00+00:00"), "passed", []),  # down 9%
        (counts(600, 100, 50, "2025-03-01T00:00:00+00:00"), "refused", ["ratings"]),
        (counts(1000, 85, 50, "2025-03-01T00:00:00+00:00"), "refused", ["users"]),
        (counts(1000, 100, 44, "2025-03-01T00:00:00+00:00"), "refused", ["movies"]),
        (counts(1200, 120, 60, "2025-02-27T00:00:00+00:00"), "refused", ["newest_rating_at"]),
    ],
)
def test_the_data_gate_refuses_shrunk_or_stale_data(tonight, decision, failed) -> None:
    before = run_with(V1, counts(1000, 100, 50, "2025-02-28T00:00:00+00:00"))
    got = decide_data(tonight, before, before, max_drop=0.1)
    assert got.decision == decision and got.passed == (decision == "passed")
    assert [c["check"] for c in got.checks if not c["passed"]] == failed
    assert got.compared_with == {"counts": V1, "newest_rating": V1}
    if failed == ["ratings"]:
        assert got.reason == (
            "ratings 600 vs 1,000 in the last published run: down 40.0% (a drop of at "
            "most 10.0% allowed)"
        )
    if failed == ["newest_rating_at"]:
        assert "older than the newest the model in service (20250301T021500Z) saw" in got.reason
    forced = decide_data(tonight, before, before, max_drop=0.1, force=True)
    assert forced.passed and forced.decision == ("forced" if failed else "passed")


def test_the_data_gate_compares_counts_with_the_last_publish_and_time_with_the_service() -> None:
    last = run_with(V2, counts(2000, 100, 50, "2025-03-02T00:00:00+00:00"))
    service = run_with(V1, counts(1000, 100, 50, "2025-03-01T00:00:00+00:00"))  # rolled back
    tonight = counts(1500, 100, 50, "2025-03-01T12:00:00+00:00")
    got = decide_data(tonight, last, service, max_drop=0.1)
    assert got.decision == "refused" and [c["check"] for c in got.checks if not c["passed"]] == [
        "ratings"
    ]  # 1,500 is 25% below the last publish, though above what is in service
    assert got.compared_with == {"counts": V2, "newest_rating": V1}


def test_the_first_run_and_reports_without_counts_pass() -> None:
    tonight = counts(10, 2, 2)
    first = decide_data(tonight, None, None, max_drop=0.1)
    assert first.passed and first.decision == "first"
    old = decide_data(tonight, {"version": V1, "data": {}}, None, max_drop=0.0)
    assert old.passed and old.decision == "passed" and "no data counts" in old.reason


# --- list quality --------------------------------------------------------------------------
def test_gini_of_known_distributions() -> None:
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (n - 1) / n
    assert gini(np.array([0, 0])) == 0.0
    assert gini(np.array([1, 3])) == pytest.approx(0.25)


@settings(max_examples=60, deadline=None)
@given(
    n_users=st.integers(1, 7),
    n_movies=st.integers(1, 9),
    k=st.integers(1, 6),
    n_unknown=st.integers(0, 2),
    seed=st.integers(0, 2**31),
)
def test_popularity_counts_match_the_lists_built_one_by_one(
    n_users: int, n_movies: int, k: int, n_unknown: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 4 * n_users * n_movies // 2 + 1))
    users, movies = rng.integers(0, n_users, n), rng.integers(0, n_movies, n)  # repeats too
    rated = Part(users, movies, np.ones(n, np.float32))
    vocab = Vocabulary(np.arange(n_users) * 10, np.arange(n_movies) * 3)
    chosen = rng.random(n_users) < 0.7
    rating_counts = np.bincount(movies, minlength=n_movies)
    got = popularity_counts(rated, vocab, chosen, n_unknown, k, rating_counts)
    order = np.argsort(-rating_counts, kind="stable")
    want = np.zeros(n_movies, np.int64)
    for user in np.flatnonzero(chosen):
        seen = set(movies[users == user].tolist())
        want[[m for m in order if m not in seen][:k]] += 1
    want[order[:k]] += n_unknown
    assert got.tolist() == want.tolist()


def write_topk(path: Path, rows: list[tuple], user_col: str, movie_col: str, id_type) -> Path:
    users, ranks, movies, preds = zip(*rows, strict=True)
    table = pa.table(
        {
            user_col: pa.array(users, id_type),
            "rank": pa.array(ranks, pa.int32()),
            movie_col: pa.array(movies, id_type),
            "predicted_rating": pa.array(preds, pa.float32()),
            "score": pa.array(preds, pa.float32()),
            "cold_start": pa.array([False] * len(rows)),
        }
    )
    pq.write_table(table, path, row_group_size=2)  # several batches
    return path


@pytest.mark.parametrize(
    ("user_ids", "movie_ids", "id_type"),
    [
        (["c1", "c2", "c3"], ["sku-a", "sku-b", "sku-c", "sku-d"], pa.string()),
        ([7, 8, 9], [100, 200, 300, 400], pa.int64()),
    ],
)
def test_list_quality_reads_the_tables_own_id_columns(
    tmp_path: Path, user_ids, movie_ids, id_type
) -> None:
    """The published table's ID columns are named as the training data named them, and
    IDs may be strings: nothing assumes user_id, movie_id or integers."""
    u, m = user_ids, movie_ids
    # ratings: movie 0 rated 3 times, movie 1 twice, movie 2 once, movie 3 once
    rated = Part(
        np.array([0, 1, 2, 0, 1, 2, 0]), np.array([0, 0, 0, 1, 1, 2, 3]), np.ones(7, np.float32)
    )
    vocab = Vocabulary(
        np.array(u, dtype=object if id_type == pa.string() else np.int64),
        np.array(m, dtype=object if id_type == pa.string() else np.int64),
    )
    rows = [
        (u[0], 1, m[2], 4.5),
        (u[0], 2, m[3], 4.0),  # fmt: skip
        (u[1], 1, m[2], 4.4),
        (u[1], 2, m[3], 4.1),  # fmt: skip
        (u[2], 1, m[3], 4.2),
        (u[2], 2, m[1], 3.9),  # fmt: skip
        ("new" if id_type == pa.string() else 99, 1, m[0], 3.5),  # fmt: skip
        ("new" if id_type == pa.string() else 99, 2, m[1], 3.4),  # fmt: skip
    ]
    table = write_topk(tmp_path / "t.parquet", rows, "customer_id", "sku", id_type)
    titles = {m[2]: "Heat (1995)"}
    figures, samples = measure_lists(table, vocab, [rated], 2, titles=titles, seed=1)
    assert figures["users"] == 4 and figures["catalog_movies"] == 4
    model = figures["model"]
    assert model == {
        "coverage": 1.0,
        "movies_in_lists": 4,
        "slots": 8,
        "top_1pct_share": 1 / 8,  # movie 0, the most rated, is in one list
        "gini": pytest.approx(gini(np.array([1, 2, 2, 3]))),
    }
    assert figures["top_movies"][0] == {"movie": m[3], "title": None, "lists": 3}
    assert figures["top_movies"][1] == {"movie": m[1], "title": None, "lists": 2}
    assert figures["top_movies"][2] == {"movie": m[2], "title": "Heat (1995)", "lists": 2}
    # popularity: u0 rated m0, m1, m3 -> m2 only; u1 rated m0, m1 -> m2, m3; u2 rated m0,
    # m2 -> m1, m3; the unknown user -> m0, m1
    popular = figures["popularity"]
    assert popular["slots"] == 7 and popular["movies_in_lists"] == 4
    assert len(samples) == 4 and {s["user"] for s in samples} == {r[0] for r in rows}
    first = next(s for s in samples if s["user"] == u[0])
    assert first["items"] == [
        {"rank": 1, "movie": m[2], "title": "Heat (1995)", "predicted_rating": 4.5, "score": 4.5},
        {"rank": 2, "movie": m[3], "title": None, "predicted_rating": 4.0, "score": 4.0},
    ]


# --- a home folder with published versions, made by hand -----------------------------------
def published_home(root: Path, versions=(V1, V2), service: str = V2) -> Home:
    """Versions as runs publish them: model folder, table, and a run report."""
    home = Home(root)
    home.create()
    for i, v in enumerate(versions):
        home.model_dir(v).mkdir()
        (home.model_dir(v) / "model.onnx").write_bytes(b"x")
        pq.write_table(
            pa.table({"user_id": [1, 2], "rank": [1, 1], "movie_id": [3, 4]}), home.table(v)
        )
        report = {
            "version": v,
            "status": "published",
            "exit_code": 0,
            "started_at": f"2025-03-0{i + 1}T02:15:00+00:00",
            "finished_at": f"2025-03-0{i + 1}T02:16:00+00:00",
            "wall_seconds": 60.0 + i,
            "config": {"keep": 2},
            "data": {"ratings": 1000 + i, "users": 100, "movies": 50,
                     "newest_rating_at": f"2025-02-2{i + 1}T00:00:00+00:00"},
            "data_gate": {"decision": "first" if i == 0 else "passed"},
            "gate": {"decision": "first" if i == 0 else "passed"},
            "metrics": {"candidate": {"test_rmse": 0.9 - i / 100, "test_ndcg@10": 0.3 + i / 100}},
            "stages": {"train": {"status": "done", "wall_seconds": 50.0, "peak_rss_mib": 500.0},
                       "score": {"status": "done", "wall_seconds": 5.0, "peak_rss_mib": 300.0}},
            "process_peak_rss_mib": 600.0,
            "recommendations": {"rows": 2, "users": 2, "top_k": 1, "samples": [
                {"user": 1, "items": [{"rank": 1, "movie": 3, "title": "<b>Heat</b> (1995)",
                                       "predicted_rating": 4.5, "score": 4.5}]}]},
            "list_quality": {
                "k": 1, "users": 2, "catalog_movies": 50, "most_rated_movies": 1,
                "model": {"coverage": 0.04, "movies_in_lists": 2, "slots": 2,
                          "top_1pct_share": 0.5, "gini": 0.96},
                "popularity": {"coverage": 0.02, "movies_in_lists": 1, "slots": 2,
                               "top_1pct_share": 1.0, "gini": 0.98},
                "top_movies": [{"movie": 3, "title": "<b>Heat</b> (1995)", "lists": 1}],
            },
        }  # fmt: skip
        home.report(v).write_text(json.dumps(report))
    switch_link(home.current, service)
    switch_link(home.latest, f"{service}.parquet")
    return home


def test_rollback_goes_back_one_published_version_and_records_it(tmp_path: Path) -> None:
    home = published_home(tmp_path, (V1, V2, V3), service=V3)
    home.report("20250302T120000Z").write_text(json.dumps({"version": "20250302T120000Z",
                                                           "status": "refused"}))  # fmt: skip
    at = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
    result = roll_back(RollbackConfig(home=tmp_path), started=at)
    assert result.version == "20250304T090000Z"
    assert (home.in_service(), home.latest_table()) == (V2, V2)
    report = json.loads(home.report(result.version).read_text())
    assert report["status"] == "rolled-back" and report["rollback"]["to"] == V2
    assert report["rollback"]["from"] == V3 and report["exit_code"] == 0
    # again: the version published before V2
    roll_back(RollbackConfig(home=tmp_path), started=at)
    assert home.in_service() == V1
    with pytest.raises(UsageError, match=f"no version published before {V1} is kept"):
        roll_back(RollbackConfig(home=tmp_path))
    # forward again, by name; the page and the metrics file follow
    prom = tmp_path / "m.prom"
    roll_back(RollbackConfig(home=tmp_path, to=V3, metrics_file=prom))
    assert home.in_service() == V3 and home.latest_table() == V3
    assert 'movierec_nightly_last_run_status{status="rolled-back"} 1.0' in prom.read_text()
    assert (tmp_path / "report.html").is_file()


def test_rollback_refusals_change_nothing(tmp_path: Path) -> None:
    home = published_home(tmp_path)
    with pytest.raises(UsageError, match=f"{V2} is already in service; nothing changed"):
        roll_back(RollbackConfig(home=tmp_path, to=V2))
    with pytest.raises(UsageError, match=rf"20990101T000000Z is not a published version .*"
                                         rf"kept: {V1}, {V2}"):  # fmt: skip
        roll_back(RollbackConfig(home=tmp_path, to="20990101T000000Z"))
    with hold_lock(home.lock, "now"), pytest.raises(LockHeld):
        roll_back(RollbackConfig(home=tmp_path, to=V1))
    assert home.in_service() == V2 and home.latest_table() == V2
    assert sorted(p.stem for p in home.runs.iterdir()) == [V1, V2]  # no report written
    empty = Home(tmp_path / "empty")
    empty.create()
    with pytest.raises(UsageError, match="nothing is in service"):
        roll_back(RollbackConfig(home=empty.root))


def test_status_names_the_service_the_last_run_and_the_next_prune(tmp_path: Path) -> None:
    home = published_home(tmp_path, (V1, V2, V3), service=V2)  # V3 rolled away from
    status = read_status(tmp_path)
    service = status["in_service"]
    assert service["version"] == V2 and service["links_agree"]
    assert service["published_at"] == "2025-03-02T02:16:00+00:00"
    assert service["table"] == {"path": str(home.latest), "rows": 2, "users": 2, "top_k": 1}
    assert service["test_rmse"] == pytest.approx(0.89)
    assert status["last_run"]["version"] == V3
    # keep 2 (the last run's): publishing one more leaves room for one of the three
    assert status["next_prune"] == {"keep": 2, "if_the_next_run_publishes": [V1, V2]}
    assert read_status(tmp_path, keep=5)["next_prune"]["if_the_next_run_publishes"] == []
    text = format_status(status)
    assert f"in service {V2}, published 2025-03-02T02:16:00+00:00" in text
    assert f"next prune --keep 2: removes {V1}, {V2}" in text
    switch_link(home.latest, f"{V3}.parquet")
    assert "WARNING: latest.parquet points at" in format_status(read_status(tmp_path))
    with pytest.raises(UsageError, match="is not a rec-nightly home folder"):
        read_status(tmp_path / "models" / V1)


def test_the_report_is_one_page_that_fetches_nothing(tmp_path: Path) -> None:
    home = published_home(tmp_path)
    home.report("20250303T021500Z").write_text(
        json.dumps({"version": V3, "status": "failed", "exit_code": 2, "error": "DataError: x",
                    "stages": {"load": {"status": "failed", "wall_seconds": 0.1}}})
    )  # fmt: skip
    html = render_html_report(home)
    assert_self_contained_html(html)
    assert html.count("<svg") == 5
    assert "&lt;b&gt;Heat&lt;/b&gt; (1995)" in html and "<b>Heat" not in html  # escaped
    for v in (V1, V2, V3):
        assert f"<td>{v}</td>" in html
    assert "DataError: x" in html and 'class="status-failed"' in html
    written = re.compile(r"Written \S+ from")  # the one line that changes between renders
    assert written.sub("", render_html_report(home)) == written.sub("", html)  # same bytes
    empty = Home(tmp_path / "empty")
    empty.create()
    page = render_html_report(empty)
    assert "Nothing is in service yet." in page and "<svg" not in page


def test_the_metrics_file_of_a_failed_run_keeps_the_last_success(tmp_path: Path) -> None:
    home = published_home(tmp_path)
    prom = tmp_path / "nightly.prom"
    failed = {"version": V3, "status": "failed", "exit_code": 74,
              "finished_at": "2025-03-03T02:15:30+00:00",
              "stages": {"load": {"status": "failed", "wall_seconds": 0.5}}}  # fmt: skip
    write_metrics_file(prom, home, failed)
    text = prom.read_text()
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }
    success = datetime(2025, 3, 2, 2, 16, tzinfo=UTC).timestamp()
    assert samples["movierec_nightly_last_success_timestamp_seconds"] == success
    assert samples["movierec_nightly_last_run_timestamp_seconds"] == success + 86400 - 30
    assert "movierec_nightly_last_run_exit_code 74.0" in text
    assert 'movierec_nightly_last_run_status{status="failed"} 1.0' in text
    assert 'movierec_nightly_stage_seconds{stage="load"} 0.5' in text
    assert 'movierec_nightly_test_rmse{model="in_service"} 0.89' in text
    assert "movierec_nightly_table_rows 2.0" in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("nightly.prom")] == [
        "nightly.prom"  # no temporary left beside it
    ]
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True, timeout=60)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr


# --- the command line ----------------------------------------------------------------------
def test_each_subcommand_has_its_help() -> None:
    for name, words in (
        ("status", ["--home", "--json", "--keep"]),
        ("rollback", ["--home", "VERSION", "--metrics-file", "--quiet", "75 a run holds"]),
        ("report", ["--home", "--out", "--nights", "self-contained"]),
    ):
        result = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: rec-nightly {name} [OPTIONS]")
        for word in words:
            assert word in result.output, (name, word)


def test_status_and_report_commands(tmp_path: Path) -> None:
    published_home(tmp_path)
    status = CliRunner().invoke(cli, ["status", "--home", str(tmp_path), "--json"])
    assert status.exit_code == 0 and json.loads(status.output)["in_service"]["version"] == V2
    out = tmp_path / "elsewhere" / "page.html"
    out.parent.mkdir()
    report = CliRunner().invoke(cli, ["report", "--home", str(tmp_path), "--out", str(out)])
    assert report.exit_code == 0 and report.output.strip() == str(out)
    assert_self_contained_html(out.read_text())


def test_an_option_value_equal_to_a_command_name_is_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--data status`` names a folder called status; ``--home report`` a home called
    report: neither starts the command of that name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "u.data").write_text("1\t2\tx\t3\n")  # malformed: fails at load
    code, err = run_nightly_args(["--data", "status", "--home", "report", "--quiet"])
    assert code == 2, err
    error, last = err.splitlines()
    assert "Error: " in error and "status/u.data line 1" in error
    assert last.endswith("rec-nightly exit 2 (bad input or usage)")
    report = json.loads(next((tmp_path / "report" / "runs").iterdir()).read_text())
    assert report["status"] == "failed" and report["exit_code"] == 2
    assert (tmp_path / "report" / "report.html").is_file()


def test_run_options_before_a_command_are_refused_and_home_is_required(tmp_path: Path) -> None:
    code, err = run_nightly_args(["--top-k", "5", "status", "--home", str(tmp_path)])
    assert code == 2 and "--top-k belong to the nightly run, not to 'status'" in err
    code, err = run_nightly_args(["--quiet"])
    assert code == 2 and "Missing option '--home'" in err
    assert err.splitlines()[-1].endswith("rec-nightly exit 2 (bad input or usage)")


def test_without_data_the_run_reads_movierec_data_and_logs_each_line_with_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "ratings"
    broken.mkdir()
    (broken / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,x,3\n")
    monkeypatch.setenv("MOVIEREC_DATA", str(broken))
    prom = tmp_path / "m.prom"
    code, err = run_nightly_args(["--home", str(tmp_path / "home"), "--metrics-file", str(prom)])
    assert code == 2
    lines = err.splitlines()
    version = json.loads(next((tmp_path / "home" / "runs").iterdir()).read_text())["version"]
    assert all(line.startswith(f"{version} ") for line in lines), lines
    assert any(f"{broken / 'ratings.csv'} line 2" in line for line in lines)
    assert lines[-1] == f"{version} rec-nightly exit 2 (bad input or usage)"
    assert 'movierec_nightly_last_run_status{status="failed"} 1.0' in prom.read_text()
    assert "movierec_nightly_last_success_timestamp_seconds" not in prom.read_text()


def test_a_metrics_file_the_collector_would_not_read_is_refused_first(tmp_path: Path) -> None:
    code, err = run_nightly_args(
        ["--home", str(tmp_path / "h"), "--metrics-file", str(tmp_path / "m.txt")]
    )
    assert code == 2 and "--metrics-file must end in .prom" in err
    code, err = run_nightly_args(
        ["--home", str(tmp_path / "h"), "--metrics-file", str(tmp_path / "no" / "m.prom")]
    )
    assert code == 2 and "the folder" in err and "does not exist" in err
    assert not (tmp_path / "h").exists()  # refused before the home was touched


def test_rollback_points_the_database_view_with_the_links(tmp_path: Path) -> None:
    """With --publish, the view the runs switch goes back to the version too (SQLite)."""
    pytest.importorskip("adbc_driver_sqlite")
    from movierec.db import parse_database_uri, prune_tables, published_versions, stage_version

    home = published_home(tmp_path / "home", (V1, V2, V3), service=V3)
    uri = parse_database_uri(f"sqlite:///{tmp_path / 'recs.db'}")
    for v in (V1, V2, V3):
        with stage_version(uri, "recommendations", v, home.table(v)) as staged:
            staged.switch()
    assert published_versions(uri, "recommendations")[1] == V3
    code, err = run_nightly_args(
        ["rollback", "--home", str(home.root), "--publish", str(uri), "--quiet"]
    )
    assert code == 0, err
    assert published_versions(uri, "recommendations")[1] == V2
    assert (home.in_service(), home.latest_table()) == (V2, V2)
    report = read_status(home.root)["last_run"]
    assert report["status"] == "rolled-back"
    run = json.loads(next(p for p in home.runs.iterdir() if p.stem > V3).read_text())
    assert run["database"] == {"target": str(uri), "view": "recommendations", "from": V3}
    # a version whose table the database no longer has: refused, nothing changes
    prune_tables(uri, "recommendations", keep=[V2, V3])
    code, err = run_nightly_args(["rollback", "--home", str(home.root), "--publish", str(uri), V1])
    assert code == 2 and "does not exist (pruned?)" in err, err
    assert published_versions(uri, "recommendations")[1] == V2
    assert (home.in_service(), home.latest_table()) == (V2, V2)
    code, err = run_nightly_args(["rollback", "--home", str(home.root), "--publish", str(uri), V3])
    assert code == 0, err
    assert published_versions(uri, "recommendations")[1] == V3 and home.in_service() == V3
