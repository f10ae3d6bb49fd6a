"""Fixtures of the rec-nightly tests: tiny training options and an in-process runner."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from tests.conftest import TINY

#: The TINY training of tests/conftest.py as rec-nightly flags, on one torch thread (the
#: default thread count ran 10x slower on a busy 2-core machine).
TINY_ARGS = [
    "--epochs",
    str(TINY["epochs"]),
    "--batch-size",
    str(TINY["batch_size"]),
    "--embedding-dim",
    str(TINY["embedding_dim"]),
    "--hidden",
    ",".join(map(str, TINY["hidden"])),
    "--factors",
    str(TINY["factors"]),
    "--patience",
    str(TINY["patience"]),
    "--threads",
    "1",
]
#: A candidate deliberately worse than TINY: one epoch at a learning rate too small to
#: move the weights far from their start.
WORSE_ARGS = ["--epochs", "1", "--lr", "1e-5"]


def run_nightly_cli(data: Path, home: Path, *extra: str, quiet: bool = True) -> tuple[int, str]:
    """rec-nightly in this process through the real exit-code mapping: (code, stderr)."""
    from movierec.nightly.cli import UNTOUCHED, cli
    from movierec.serve_batch.cli_support import run_command

    argv = ["--data", str(data), "--home", str(home), *TINY_ARGS, *extra]
    if quiet:
        argv.append("--quiet")
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        code = run_command(cli, argv, untouched=UNTOUCHED)
    return code, buffer.getvalue()


def link(path: Path) -> str | None:
    """Where a symlink points (None if there is none)."""
    return os.readlink(path) if path.is_symlink() else None


@pytest.fixture
def run_nightly():
    return run_nightly_cli
