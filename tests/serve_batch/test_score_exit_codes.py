"""The exit codes every command shares, as ``run_command`` maps them, and rec-score's
one-line report of a full disk."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from movierec.serve_batch.cli_support import run_command
from movierec.serve_batch.errors import (
    ArtifactError,
    DataError,
    GateRefused,
    Interrupted,
    LockHeld,
    StorageError,
)
from tests.support import list_dir, write_table

REPO = Path(__file__).resolve().parents[2]


def raising(exc: BaseException) -> click.Command:
    @click.command()
    def cmd() -> None:
        raise exc

    return cmd


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (DataError("in.csv: column 'user_id' row 3: bad"), 2, "Error: in.csv: column"),
        (ArtifactError("no model"), 2, "Error: no model"),
        (GateRefused("test RMSE 0.95 > 0.90 + 0.01"), 3, "Error: test RMSE 0.95"),
        (StorageError("/data/out.parquet", "No space left on device"), 74, "Error: /data/out"),
        (OSError(errno.EIO, "Input/output error", "/data/in.csv"), 74, "Error: /data/in.csv: "),
        (LockHeld("DIR/.lock is held by PID 7"), 75, "Error: DIR/.lock is held"),
        (Interrupted(signal.SIGINT), 130, "Interrupted by SIGINT: kept"),
        (Interrupted(signal.SIGTERM, "the service"), 143, "Interrupted by SIGTERM: the service"),
        (KeyboardInterrupt(), 130, "Interrupted by SIGINT: kept"),
    ],
)
def test_each_outcome_has_its_code_and_one_line(exc, code, line, capsys) -> None:
    assert run_command(raising(exc), [], untouched="kept") == code
    # (Click prints an empty line before turning a bare KeyboardInterrupt into Abort)
    err = capsys.readouterr().err.lstrip("\n")
    assert err.startswith(line), err
    assert len(err.splitlines()) == 1


def test_a_bug_exits_1_with_a_traceback(capsys) -> None:
    assert run_command(raising(ZeroDivisionError("x")), []) == 1
    err = capsys.readouterr().err
    assert "this is a bug" in err and "Traceback" in err and "ZeroDivisionError" in err


def test_os_error_without_a_file_gives_the_system_words(capsys) -> None:
    exc = OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space")
    assert run_command(raising(exc), []) == 74
    assert capsys.readouterr().err == "Error: No space left on device\n"


@pytest.mark.parametrize("module", ["serve_batch", "train", "export"])
def test_every_command_has_version_and_the_exit_code_table(module: str) -> None:
    import importlib

    cli = importlib.import_module(f"movierec.{module}.cli").cli
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith(f"{cli.name} (movierec) ")
    text = CliRunner().invoke(cli, ["--help"], terminal_width=200).output
    for code in (
        "0    done",
        "2    bad input",
        "3    refused",
        "74   an operating",
        "75   another",
    ):
        assert code in text, code
    assert "130  interrupted by SIGINT" in text and "143 by SIGTERM" in text


def _limit_file_size() -> None:
    # any write beyond 200 kB fails with EFBIG, as a full disk fails with ENOSPC
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics of Linux")
@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_a_failing_write_exits_74_naming_the_output(fake, tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    inp = write_table(
        tmp_path / "in.parquet",
        {"user_id": rng.choice(fake.user_ids, n), "movie_id": rng.choice(fake.movie_ids, n)},
    )
    out = tmp_path / "out" / name
    out.parent.mkdir()
    out.write_bytes(b"previous output")
    proc = subprocess.run(
        [sys.executable, "-m", "movierec.serve_batch", str(inp), str(out)]
        + ["--artifacts", str(fake.folder), "--quiet", "--batch-size", "10000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=120,
    )
    assert proc.returncode == 74, proc.stderr
    assert proc.stderr == f"Error: {out}: {os.strerror(errno.EFBIG)}\n"
    assert out.read_bytes() == b"previous output"
    assert list_dir(out.parent) == [name]  # the temporaries are gone
