"""Dataflow-process fixtures: a migrated audit and reminder database per module, and a
helper that starts a flow the way `taskflow up` (and the container entrypoint) does."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit_store.db.migrate import migrate
from deploy.local_env import DATAFLOWS, Layout, child_specs
from reminders.db.migrate import migrate_url

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def audit_url(create_database: Callable[[str], Awaitable[str]]) -> str:
    url = await create_database("flows_audit")
    await migrate(url)
    return url


@pytest.fixture(scope="module")
async def reminders_url(create_database: Callable[[str], Awaitable[str]]) -> str:
    url = await create_database("flows_reminders")
    await migrate_url(url)
    return url


@dataclass
class Flow:
    """One flow process started from the spec `taskflow up` builds, stopped by PID."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def tail(self) -> str:
        return "\n".join(self.lines()[-40:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> tuple[int, float]:
        """Send `sig`; returns (exit code, seconds until the process exited)."""
        started = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"{self.name} ignored signal {sig}:\n{self.tail()}") from None
        return code, time.monotonic() - started


@pytest.fixture
def start_flow(tmp_path: Path) -> Iterator[Callable[..., Flow]]:
    """`start_flow("audit-flow", env)`: the child `taskflow up` runs for that flow, in
    `tmp_path`'s layout, with `env` on top of this process's environment."""
    started: list[Flow] = []

    def start(name: str, env: Mapping[str, str], log_name: str | None = None) -> Flow:
        spec = child_specs([name], Layout(tmp_path / "data"), {}, {})[0]
        assert spec.name in {d.name for d in DATAFLOWS}
        log = tmp_path / (log_name or f"{name}.log")
        with open(log, "ab") as out:
            process = subprocess.Popen(  # noqa: S603 - the launcher's own argv
                list(spec.argv),
                env={**os.environ, **spec.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        flow = Flow(name, process, log)
        started.append(flow)
        return flow

    yield start
    for flow in started:
        if flow.process.poll() is None:
            flow.process.kill()
            flow.process.wait(10)


def scrape(port: int, deadline: float, flow: Flow) -> str:
    """The flow's /metrics once it answers (fails if the process died first)."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:  # noqa: S310
                return str(r.read().decode())
        except (urllib.error.URLError, OSError):
            assert flow.process.poll() is None, f"{flow.name} exited:\n{flow.tail()}"
            assert time.monotonic() < deadline, f"no /metrics from {flow.name}:\n{flow.tail()}"
            time.sleep(0.2)
