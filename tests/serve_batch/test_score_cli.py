"""The rec-score command: exit codes, one-line messages, help, option checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from movierec.serve_batch import contract
from movierec.serve_batch.cli import cli
from tests.support import list_dir, write_table


def test_pairs_mode_end_to_end(run_cli, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.csv", make_pairs(100))
    code, err = run_cli(inp, tmp_path / "out.parquet", "--top-k", "3", "--batch-size", "16")
    assert (code, err) == (0, "")
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 100
    assert pq.read_table(tmp_path / "out.topk.parquet").num_rows > 0
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    assert (
        manifest["config"]["job"]["top_k"] == 3 and manifest["config"]["runtime"]["quiet"] is True
    )


def test_catalog_mode_end_to_end(run_cli, fake, tmp_path: Path) -> None:
    users = write_table(tmp_path / "users.parquet", {"user_id": fake.user_ids[:3]})
    rated = write_table(
        tmp_path / "rated.csv.gz", {"user_id": fake.user_ids[:1], "movie_id": fake.movie_ids[:1]}
    )
    code, err = run_cli(
        users, tmp_path / "top.csv", "--all-movies", "--exclude", rated, "--top-k", "2"
    )
    assert (code, err) == (0, "")
    assert (tmp_path / "top.csv").read_text().splitlines()[0] == (
        "user_id,rank,movie_id,predicted_rating,score,cold_start"
    )


def test_unknown_warning_is_logged_unless_quiet(fake, make_pairs, tmp_path: Path, capsys) -> None:
    from movierec.serve_batch.cli_support import run_command

    inp = write_table(tmp_path / "in.parquet", make_pairs(100, unknown=True))
    args = [str(inp), str(tmp_path / "o.parquet"), "--artifacts", str(fake.folder)]
    assert run_command(cli, args) == 0
    err = capsys.readouterr().err
    assert "had IDs missing from the mapping" in err and "rows -> " in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--unknown", "error"], r"Error: .*in\.parquet: \d+ of 100 rows have IDs missing"),
        (["--batch-size", "0"], "Invalid value for '--batch-size'"),
        (["--unknown", "ignore"], "Invalid value for '--unknown'"),
        (["--graph-opt", "max"], "Invalid value for '--graph-opt'"),
        (["--exclude", "{inp}"], "--exclude only applies to catalog mode"),
        (["--top-k-output", "x.parquet"], "--top-k-output needs --top-k"),
        (["--user-col", "movie_id"], "--user-col and --movie-col are both 'movie_id'"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    run_cli, make_pairs, tmp_path: Path, extra: list[str], message: str
) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(100, unknown=True))
    extra = [e.format(inp=inp) for e in extra]
    code, err = run_cli(inp, tmp_path / "out.parquet", *extra)
    assert code == 2
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("Error")]) == 1
    import re

    assert re.search(message, err), err
    assert list_dir(tmp_path) == ["in.parquet"]


def test_missing_input_exits_2(run_cli, tmp_path: Path) -> None:
    code, err = run_cli(tmp_path / "nope.parquet", tmp_path / "out.parquet")
    assert code == 2 and "does not exist" in err


def test_bad_input_exits_2_and_names_file_column_row(run_cli, tmp_path: Path) -> None:
    inp = tmp_path / "pairs.csv"
    inp.write_text("user_id,movie_id\n10,1\n10,2\n10,3\n10,abc\n")
    code, err = run_cli(inp, tmp_path / "out.csv")
    assert code == 2
    assert err.strip() == (
        f"Error: {inp}: column 'movie_id' row 3 (0-based data row): expected an integer "
        "movie ID, got 'abc'"
    )


def test_edited_mapping_exits_2(run_cli, fake, make_pairs, tmp_path: Path) -> None:
    arts = tmp_path / "arts"
    shutil.copytree(fake.folder, arts)
    mapping = arts / contract.MAPPING_FILE
    mapping.write_bytes(mapping.read_bytes().replace(b'"damping": 5.0', b'"damping": 6.0'))
    inp = write_table(tmp_path / "in.parquet", make_pairs(10))
    code, err = run_cli(inp, tmp_path / "out.parquet", "--artifacts", arts, artifacts=False)
    assert code == 2
    assert "does not match" in err and "Traceback" not in err
    assert not (tmp_path / "out.parquet").exists()


def test_missing_artifacts_exit_2(run_cli, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(10))
    code, err = run_cli(
        inp, tmp_path / "o.parquet", "--artifacts", tmp_path / "none", artifacts=False
    )
    assert code == 2 and "model not found" in err


def test_unexpected_error_exits_1_with_traceback(
    run_cli, make_pairs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import movierec.serve_batch._pairs as pairs_module

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pairs_module.TopKAccumulator, "add_selected", boom)
    inp = write_table(tmp_path / "in.parquet", make_pairs(10))
    code, err = run_cli(inp, tmp_path / "o.parquet", "--top-k", "2")
    assert code == 1 and "Traceback" in err and "RuntimeError: boom" in err
    assert list_dir(tmp_path) == ["in.parquet"]


def test_help_explains_every_option_with_defaults() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    text = result.output
    for option in [
        "--artifacts",
        "--user-col",
        "--movie-col",
        "--top-k ",
        "--top-k-output",
        "--unknown",
        "--all-movies",
        "--exclude",
        "--batch-size",
        "--threads",
        "--graph-opt",
        "--quiet",
    ]:
        assert option in text
    for default in [
        "[default: artifacts]",
        "[default: the model's user column",
        "[default: the model's movie column",
        "[default: fallback]",
        "[default: 65536; x>=1]",
        "[default: 0; x>=0]",
        "[default: all]",
        "out.topk.parquet",
        "Exit codes",
        "global mean",
    ]:
        assert default in text, default


def test_python_dash_m_entry_point(fake, make_pairs, tmp_path: Path) -> None:
    import subprocess
    import sys

    inp = write_table(tmp_path / "in.parquet", make_pairs(20))
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "movierec.serve_batch",
            str(inp),
            str(out),
            "--artifacts",
            str(fake.folder),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 21
    assert np.isfinite(pq.read_table(inp).column(0).to_numpy()).all()
