"""rec-score must run where PyTorch is not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import write_table

REPO = Path(__file__).resolve().parents[2]

BLOCK_TORCH_AND_RUN = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    class BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} is blocked: serve_batch must not need torch")
            return None

    sys.meta_path.insert(0, BlockTorch())
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        del sys.modules[name]
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the torch blocker does not work")

    import movierec.serve_batch
    for info in pkgutil.walk_packages(movierec.serve_batch.__path__, "movierec.serve_batch."):
        importlib.import_module(info.name)

    from movierec.serve_batch.cli import main

    codes = []
    for argv in (sys.argv[1:5], sys.argv[5:]):
        sys.argv = ["rec-score", *argv]
        try:
            main()
        except SystemExit as exc:
            codes.append(exc.code)
    loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    print("codes", codes, "torch modules", loaded)
    sys.exit(0 if codes == [0, 0] and not loaded else 3)
    """
)


def test_rec_score_runs_with_torch_blocked(fake, make_pairs, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", make_pairs(50, unknown=True))
    users = write_table(tmp_path / "users.csv", {"user_id": fake.user_ids[:2]})
    art = ["--artifacts", str(fake.folder)]
    argv = [str(inp), str(tmp_path / "out.parquet"), *art]
    argv += [str(users), str(tmp_path / "top.csv"), "--all-movies", *art]
    assert len(argv) == 9  # the script splits them 4 + 5
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH_AND_RUN, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "codes [0, 0] torch modules []" in proc.stdout
    assert (tmp_path / "out.parquet").exists() and (tmp_path / "top.csv").exists()


def test_base_dependencies_exclude_torch() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = [d.lower().replace("_", "-") for d in project["dependencies"]]
    names = [d.split(";")[0].split("[")[0] for d in deps]
    names = [
        n.split("=")[0].split(">")[0].split("<")[0].split("~")[0].split("!")[0].strip()
        for n in names
    ]
    assert "torch" not in names and not any(n.startswith(("torch", "pytorch")) for n in names)
    assert {"onnxruntime", "numpy", "pyarrow", "click"} <= set(names)
    assert project["scripts"]["rec-score"] == "movierec.serve_batch.cli:main"
