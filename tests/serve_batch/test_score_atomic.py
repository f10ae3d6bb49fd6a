"""A killed or failed run leaves no OUTPUT, and a previous OUTPUT stays as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from movierec.serve_batch.atomic import AtomicOutputs
from movierec.serve_batch.errors import UsageError
from tests.support import list_dir, write_table

REPO = Path(__file__).resolve().parents[2]


def start_scoring(fake, tmp_path: Path, out: Path, *extra: str) -> subprocess.Popen:
    rng = np.random.default_rng(0)
    n = 1_000_000
    inp = write_table(
        tmp_path / "in.parquet",
        {"user_id": rng.choice(fake.user_ids, n), "movie_id": rng.choice(fake.movie_ids, n)},
    )
    cmd = [
        sys.executable,
        "-m",
        "movierec.serve_batch",
        str(inp),
        str(out),
        "--artifacts",
        str(fake.folder),
    ]
    # small batches and one ORT thread: a long run, and a core left for this test's polling
    cmd += ["--batch-size", "500", "--threads", "1", "--quiet", *extra]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_growing_temp(proc: subprocess.Popen, folder: Path, name: str) -> Path:
    """Wait until the hidden temp of ``name`` holds some batches, i.e. the run is under way
    (the whole output is some 10 MB, so there is plenty of run left)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        temps = [p for p in folder.iterdir() if p.name.startswith(f".{name}.tmp-")]
        if temps and temps[0].stat().st_size > 64 * 1024:
            return temps[0]
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed: {proc.stderr.read().decode()}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail("temp file never appeared")


@pytest.mark.slow
def test_sigkill_half_way_leaves_previous_output_untouched(fake, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous output")
    proc = start_scoring(fake, tmp_path, out, "--top-k", "3")
    temp = wait_for_growing_temp(proc, tmp_path, "out.parquet")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert out.read_bytes() == b"previous output"
    assert not (tmp_path / "out.topk.parquet").exists()
    assert not (tmp_path / "out.parquet.manifest.json").exists()
    assert temp.name.startswith(".out.parquet.tmp-")  # hidden leftovers only


@pytest.mark.slow
def test_sigkill_without_previous_output_leaves_none(fake, tmp_path: Path) -> None:
    out = tmp_path / "out.csv.gz"
    proc = start_scoring(fake, tmp_path, out)
    wait_for_growing_temp(proc, tmp_path, "out.csv.gz")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    visible = [n for n in list_dir(tmp_path) if not n.startswith(".")]
    assert visible == ["in.parquet"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_clean_up_and_say_so(fake, tmp_path: Path, signum: int) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous output")
    proc = start_scoring(fake, tmp_path, out, "--top-k", "2")
    wait_for_growing_temp(proc, tmp_path, "out.parquet")
    os.kill(proc.pid, signum)
    proc.wait(timeout=30)
    err = proc.stderr.read().decode()
    assert proc.returncode == 128 + signum  # 143 and 130
    name = signal.Signals(signum).name
    assert err.startswith(f"Interrupted by {name}: OUTPUT, its top-k table and manifest were "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert out.read_bytes() == b"previous output"
    assert list_dir(tmp_path) == ["in.parquet", "out.parquet"]


def test_atomic_path_replaces_whole_or_leaves_the_target_alone(tmp_path: Path) -> None:
    from movierec.serve_batch.atomic import atomic_path

    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temp left
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".metrics.json.tmp-")
        tmp.write_text("new")
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not private like mkstemp's


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    return int(proc.stdout)  # that process has exited


def test_next_run_sweeps_only_stale_leftovers_of_killed_runs(
    fake, tmp_path: Path, run_cli, make_pairs
) -> None:
    from movierec.serve_batch.atomic import STALE_AFTER_SECONDS

    src = write_table(tmp_path / "in.parquet", make_pairs(50))
    out = tmp_path / "out.parquet"
    old = time.time() - STALE_AFTER_SECONDS - 60
    dead = _dead_pid()
    names = {
        "stale": f".out.parquet.tmp-{dead}-0123abcd",  # killed run, untouched for long
        "recent": f".out.parquet.tmp-{dead}-89abcdef",  # killed run, but touched lately
        "alive": f".out.parquet.tmp-{os.getppid()}-00000000",  # its process still runs
        "other": f".other.parquet.tmp-{dead}-0123abcd",  # another target's
    }
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if key != "recent":
            os.utime(tmp_path / name, (old, old))
    folder = tmp_path / f".out.parquet.tmp-{dead}-deadbeef"  # a Ray engine's temp folder
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(b"x")
    os.utime(folder, (old, old))
    code, err = run_cli(src, out)
    assert code == 0, err
    left = set(list_dir(tmp_path))
    assert names["stale"] not in left and folder.name not in left
    assert {names["recent"], names["alive"], names["other"]} <= left
    assert "out.parquet" in left


def test_staged_folder_replaces_only_an_earlier_output(tmp_path: Path) -> None:
    """The commit of folder outputs (temp folder, _SUCCESS, rename)."""

    target = tmp_path / "out"
    for run in ("first", "second"):
        with AtomicOutputs() as outputs:
            tmp = outputs.reserve_folder(target)
            (tmp / "part-000000000000.parquet").write_text(run)
            assert not (tmp / "_SUCCESS").exists()
            outputs.commit()
        assert (target / "part-000000000000.parquet").read_text() == run
        assert (target / "_SUCCESS").exists()
    assert list_dir(tmp_path) == ["out"]
    with pytest.raises(RuntimeError), AtomicOutputs() as outputs:  # a failed job
        (outputs.reserve_folder(tmp_path / "new") / "part.parquet").write_text("x")
        raise RuntimeError("job failed")
    assert list_dir(tmp_path) == ["out"]
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "data.txt").write_text("keep")
    with pytest.raises(UsageError, match="not a rec-score output"), AtomicOutputs() as outputs:
        outputs.reserve_folder(tmp_path / "theirs")
    assert (tmp_path / "theirs" / "data.txt").read_text() == "keep"
