"""The unit tier does no I/O beyond reading the repository: no process, no network.

A unit test that starts a process or opens a connection fails here, not in a slower tier
later; such a test belongs in `tests/deploy` (static deployment checks that run kubectl or
sh), `tests/integration` or `tests/e2e`.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest


class UnitTierIO(AssertionError):
    """A unit test tried to start a process or reach the network."""


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise UnitTierIO(f"the unit tier does no I/O: {what}{args[:2]!r}")

    return refuse


@pytest.fixture(autouse=True)
def no_processes_or_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("subprocess"))
    monkeypatch.setattr(socket.socket, "connect", _refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse("socket.connect_ex"))
    monkeypatch.setattr(socket.socket, "bind", _refuse("socket.bind"))
    monkeypatch.setattr(socket, "getaddrinfo", _refuse("getaddrinfo"))
    yield
