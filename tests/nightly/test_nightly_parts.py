"""The nightly job's parts without training: the gate, version names, links, pruning,
leftovers, the lock, option checks; and a run stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from movierec.nightly._gate import decide
from movierec.nightly._home import Home, switch_link
from movierec.nightly._lock import hold_lock
from movierec.nightly.config import NightlyConfig
from movierec.serve_batch.errors import LockHeld, UsageError
from tests.support import TINY_ARGS, link

REPO = Path(__file__).resolve().parents[2]


def metrics(rmse: float, ndcg: float) -> dict:
    return {"test_rmse": rmse, "test_ndcg@10": ndcg}


@pytest.mark.parametrize(
    ("rmse", "ndcg", "force", "decision"),
    [
        (0.905, 0.25, False, "passed"),  # RMSE up by 0.005 <= 0.01
        (0.92, 0.25, False, "refused"),  # RMSE up by 0.02
        (0.89, 0.235, False, "refused"),  # NDCG down by 0.015
        (0.89, 0.245, False, "passed"),
        (0.92, 0.20, True, "forced"),
    ],
)
def test_gate_tolerances(rmse: float, ndcg: float, force: bool, decision: str) -> None:
    got = decide(
        metrics(rmse, ndcg),
        metrics(0.90, 0.25),
        max_rmse_increase=0.01,
        max_ndcg_drop=0.01,
        force=force,
    )
    assert got.decision == decision
    assert got.publish == (decision != "refused")
    if decision == "refused":
        assert "in service" in got.reason


def test_gate_with_zero_tolerance_refuses_any_worsening() -> None:
    zero = dict(max_rmse_increase=0.0, max_ndcg_drop=0.0)
    assert decide(metrics(0.90, 0.25), metrics(0.90, 0.25), **zero).publish
    assert not decide(metrics(0.90, 0.2499), metrics(0.90, 0.25), **zero).publish
    assert not decide(metrics(0.9001, 0.25), metrics(0.90, 0.25), **zero).publish
    first = decide(metrics(5.0, 0.0), None, **zero)
    assert first.publish and first.decision == "first"
    unknown = decide(metrics(float("nan"), 0.3), metrics(0.9, 0.25), **zero)
    assert not unknown.publish and "cannot be compared" in unknown.reason


def test_versions_are_utc_times_made_unique(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.create()
    at = datetime(2025, 3, 1, 2, 15, 0, tzinfo=UTC)
    assert home.new_version(at) == "20250301T021500Z"
    home.report("20250301T021500Z").write_text("{}")
    assert home.new_version(at) == "20250301T021500Z-2"
    home.rejected_dir("20250301T021500Z-2").mkdir()
    assert home.new_version(at) == "20250301T021500Z-3"


def test_switch_link_replaces_the_old_link(tmp_path: Path) -> None:
    current = tmp_path / "current"
    switch_link(current, "v1")
    switch_link(current, "v2")
    assert os.readlink(current) == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current"]  # no temp left


def make_versions(home: Home, names: list[str]) -> None:
    for v in names:
        home.model_dir(v).mkdir()
        (home.model_dir(v) / "model.onnx").write_bytes(b"x")
        home.table(v).write_bytes(b"t")
        home.report(v).write_text(json.dumps({"version": v, "status": "published"}))


def test_prune_keeps_the_newest_and_never_the_one_in_service(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.create()
    names = [f"2025030{d}T021500Z" for d in range(1, 6)]
    make_versions(home, names)
    switch_link(home.current, names[0])  # rolled back to the oldest
    switch_link(home.latest, f"{names[1]}.parquet")
    removed = home.prune(keep=2)
    assert removed == names[2:3]
    assert home.versions() == [names[0], names[1], names[3], names[4]]
    assert not home.table(names[2]).exists() and home.report(names[2]).exists()


def test_sweep_removes_only_what_killed_runs_left(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.create()
    make_versions(home, ["20250301T021500Z"])
    home.staging_dir("20250302T021500Z").mkdir()
    (home.work / "20250302T021500Z").mkdir()
    home.model_dir("20250302T021500Z").mkdir()  # killed while scoring: no table, no report
    (home.models / ".current.tmp-1-abcd1234").symlink_to("x")
    (home.work / "20250303T021500Z").mkdir()  # the running one
    swept = home.sweep_leftovers(running="20250303T021500Z")
    assert len(swept) == 4
    assert home.versions() == ["20250301T021500Z"]
    assert sorted(p.name for p in home.work.iterdir()) == ["20250303T021500Z"]
    assert sorted(p.name for p in home.models.iterdir()) == ["20250301T021500Z"]


def test_a_real_folder_where_a_link_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "models" / "current").mkdir(parents=True)
    with pytest.raises(UsageError, match="current is a real file or folder, not a symlink"):
        Home(tmp_path).create()


def test_the_lock_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    with hold_lock(path, "2025-03-01T02:15:00+00:00") as held:
        held.record(version="20250301T021500Z")
        with pytest.raises(LockHeld) as refused, hold_lock(path, "later"):
            pass
    message = str(refused.value)
    assert f"PID {os.getpid()}" in message and "started 2025-03-01T02:15:00+00:00" in message
    assert "version 20250301T021500Z" in message
    with hold_lock(path, "after"):  # released when the holder's block ended
        pass


def test_options_are_checked_before_any_training(tmp_path: Path) -> None:
    from movierec.serve_batch import RayOptions
    from movierec.train.config import TrainConfig

    base = dict(data=tmp_path, home=tmp_path / "home", train=TrainConfig())
    with pytest.raises(UsageError, match="actors only applies to engine ray"):
        NightlyConfig(**base, ray=RayOptions.for_engine("local", actors=2)).check()
    with pytest.raises(UsageError, match="--keep must be at least 1"):
        NightlyConfig(**base, keep=0).check()


def test_help_and_version() -> None:
    from movierec.nightly.cli import cli

    result = CliRunner().invoke(cli, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for text in (
        "--data",
        "--home",
        "--users",
        "--top-k",
        "--titles",
        "--keep",
        "--max-rmse-increase",
        "--max-ndcg-drop",
        "--max-data-drop",
        "--metrics-file",
        "--no-refit",
        "--force",
        "--epochs",
        "--engine",
        "--quiet",
        "DIR/models/rejected-VERSION/",
        "DIR/recommendations/latest.parquet",
        "3    refused by the data gate or the quality gate",
        "75   another run holds the lock",
        "[status|rollback|report]",
        "status    What is in service",
        "rollback  Put an earlier published version back in service",
        "report    Write the HTML report",
    ):
        assert text in result.output, text
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("rec-nightly (movierec) ")


@pytest.mark.slow
def test_sigterm_exits_143_and_leaves_the_service_as_it_was(
    synthetic_ml100k, tmp_path: Path
) -> None:
    home = Home(tmp_path / "home")
    home.create()
    make_versions(home, ["20250301T021500Z"])
    switch_link(home.current, "20250301T021500Z")
    switch_link(home.latest, "20250301T021500Z.parquet")
    proc = subprocess.Popen(
        [sys.executable, "-m", "movierec.nightly", "--data", str(synthetic_ml100k)]
        + ["--home", str(home.root), *TINY_ARGS, "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (home.lock.exists() and "version " in home.lock.read_text()):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the run never took the lock"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert proc.returncode == 143, err
    v = next(p.stem for p in home.runs.iterdir() if p.stem != "20250301T021500Z")
    assert err.splitlines() == [
        f"{v} Interrupted by SIGTERM: {home.current} and {home.latest} were left as they "
        "were (still 20250301T021500Z and 20250301T021500Z.parquet)",
        f"{v} rec-nightly exit 143 (interrupted by SIGTERM)",
    ]
    assert link(home.current) == "20250301T021500Z"
    assert link(home.latest) == "20250301T021500Z.parquet"
    report = next(p for p in home.runs.iterdir() if p.stem != "20250301T021500Z")
    payload = json.loads(report.read_text())
    assert payload["status"] == "interrupted" and payload["signal"] == "SIGTERM"
    assert not list(home.work.iterdir())  # the run cleaned up after itself
    assert home.versions() == ["20250301T021500Z"]


def test_each_stage_reports_its_own_peak_memory() -> None:
    from movierec.nightly._stages import StageLog

    log = StageLog()
    with log.stage("big"):
        block = bytearray(200 * 2**20)
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page
        time.sleep(0.1)
        del block
    with log.stage("small"):
        time.sleep(0.05)
    log.close()
    big, small = log.stages["big"], log.stages["small"]
    assert big["status"] == small["status"] == "done"
    assert big["peak_rss_mib"] >= small["peak_rss_mib"] + 150
    assert big["wall_seconds"] >= 0.1
