"""The stage folders install as ``movierec.*`` and nothing else reaches site-packages."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_installed_under_movierec() -> None:
    """The explicit package list must name every folder with an ``__init__.py``."""
    config = _setuptools_config()
    expected = set()
    for prefix, folder in config["package-dir"].items():
        assert prefix == "movierec" or prefix.startswith("movierec."), prefix
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            if prefix == "movierec" and rel:
                continue  # only movierec/__init__.py: the stages are mapped one by one
            expected.add(".".join([prefix, *rel]))
    assert set(config["packages"]) == expected


def test_installed_names_work_beside_a_train_py(tmp_path: Path) -> None:
    """A notebook folder with its own ``train.py`` and ``export/`` must not shadow ours."""
    (tmp_path / "train.py").write_text("raise SystemExit('the local train.py was imported')\n")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "__init__.py").write_text("raise SystemExit('local export')\n")
    code = (
        "import movierec.serve_batch, movierec.serve_batch.cli, movierec.export.config, "
        "movierec.train.config; print('ok')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok"


def test_version_and_python_dash_m_of_every_command() -> None:
    """``movierec.__version__`` is the installed version, and each stage runs as
    ``python -m movierec.STAGE`` (where the scripts are not on PATH)."""
    from importlib.metadata import version

    import movierec

    assert movierec.__version__ == version("movierec")
    for stage in ("train", "export", "serve_batch", "nightly"):
        proc = subprocess.run(
            [sys.executable, "-m", f"movierec.{stage}", "--version"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        prog = f"python -m movierec.{stage}"
        assert proc.stdout.strip() == f"{prog} (movierec) {movierec.__version__}"
