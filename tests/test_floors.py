"""constraints-min.txt pins every base dependency at the floor pyproject.toml declares."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def declared_floors() -> dict[str, Version]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    floors = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        lower = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{line}: a base dependency needs exactly one >= floor"
        floors[canonicalize_name(req.name)] = lower[0]
    return floors


def pinned_floors() -> dict[str, Version]:
    """Every pin of constraints-min.txt (the base floors, and a few test tools)."""
    pins = {}
    for line in (REPO / "constraints-min.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"constraints-min.txt: {line} is not a pin"
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_constraints_min_pins_every_base_dependency_at_its_floor() -> None:
    declared = declared_floors()
    pinned = pinned_floors()
    assert {name: pinned.get(name) for name in declared} == declared


def test_pandas_is_not_a_base_dependency() -> None:
    """The scorer never imports pandas (tests/serve_batch/test_score_lean.py)."""
    assert "pandas" not in declared_floors()
