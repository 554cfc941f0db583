"""`taskflow up` as a subprocess, infrastructure only (no services): embedded PostgreSQL and
the broker start, a second launcher in the same folder is refused, SIGTERM stops everything,
and a second run keeps the first run's data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from deploy.broker import free_port

pytestmark = pytest.mark.integration


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class Launcher:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.out = data_dir.parent / f"up-{time.monotonic_ns()}.out"
        self.started = time.time()
        with open(self.out, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", "up", "--data-dir", str(data_dir)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.out.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(60)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[[], Launcher]]:
    env = os.environ | {"TASKFLOW_UP_COMPONENTS": "", "TASKFLOW_UP_BROKER_PORT": str(free_port())}
    for key in ("TASKFLOW_DATABASE_URL", "TASKFLOW_KAFKA_BOOTSTRAP", "TASKFLOW_JWT_SECRET"):
        env.pop(key, None)
    started: list[Launcher] = []

    def start() -> Launcher:
        started.append(Launcher(tmp_path / "data", env))
        return started[-1]

    yield start
    for launcher in started:
        if launcher.process.poll() is None:
            launcher.process.kill()
            launcher.process.wait(30)


def running_pids(data_dir: Path, launcher: Launcher) -> dict[str, int]:
    """The pids this launcher wrote (not a file left over by an earlier, killed one)."""
    pid_file = data_dir / "pids.json"

    def written() -> bool:
        return pid_file.exists() and pid_file.stat().st_mtime >= launcher.started

    until(lambda: written() or launcher.process.poll() is not None)
    assert launcher.process.poll() is None, launcher.text()
    pids: dict[str, int] = json.loads(pid_file.read_text())
    return pids


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def marker(admin_url: str, create: bool) -> bool:
    conn = await asyncpg.connect(admin_url)
    try:
        if create:
            await conn.execute('CREATE DATABASE "up_marker"')
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname='up_marker'"))
    finally:
        await conn.close()


def test_up_starts_refuses_a_twin_stops_cleanly_and_keeps_data(
    tmp_path: Path, launch: Callable[[], Launcher]
) -> None:
    data = tmp_path / "data"
    first = launch()
    pids = running_pids(data, first)
    assert set(pids) == {"postgres", "broker"}
    assert all(psutil.pid_exists(pid) for pid in pids.values())
    assert "TaskFlow is up" in first.text()
    admin_url = re.search(r"postgresql://\S+", first.text())
    assert admin_url is not None
    assert asyncio.run(marker(admin_url.group(0), create=True))
    secret = (data / "jwt-secret").read_text()

    twin = launch()
    assert twin.process.wait(30) == 1
    assert "another `taskflow up`" in twin.text()

    assert first.stop() == 0
    assert "stopped; nothing left running" in first.text()
    for pid in pids.values():
        until(lambda pid=pid: gone(pid))  # type: ignore[misc]
    assert not (data / "pids.json").exists()

    second = launch()
    running_pids(data, second)
    again = re.search(r"postgresql://\S+", second.text())
    assert again is not None
    assert asyncio.run(marker(again.group(0), create=False)), "the first run's data is gone"
    assert (data / "jwt-secret").read_text() == secret
    # Ctrl-C (SIGINT) stops it the same way.
    second_pids = running_pids(data, second)
    assert second.stop(signal.SIGINT) == 0
    assert "stopped; nothing left running" in second.text()
    for pid in second_pids.values():
        until(lambda pid=pid: gone(pid))  # type: ignore[misc]


def test_broker_command_serves_the_topics_until_sigterm(tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient

    from events.topics import Topics

    port = free_port()
    out = tmp_path / "broker.out"
    with open(out, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "broker", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        until(lambda: "memory storage" in out.read_text() or process.poll() is not None)
        assert process.poll() is None, out.read_text()
        topics = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=10)
        assert set(Topics().all()) <= set(topics.topics)
        tansu = [p.pid for p in psutil.Process(process.pid).children()]
        assert len(tansu) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        until(lambda: gone(tansu[0]))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_up_restarts_a_service_that_dies(tmp_path: Path) -> None:
    """The real task service behind `taskflow up`: SIGKILL it and it comes back."""
    import httpx

    port = free_port()
    env = os.environ | {
        "TASKFLOW_UP_COMPONENTS": "task-api",
        "TASKFLOW_UP_BROKER_PORT": str(free_port()),
        "TASKFLOW_TASK_API_PORT": str(port),
    }
    for key in ("TASKFLOW_DATABASE_URL", "TASKFLOW_KAFKA_BOOTSTRAP", "TASKFLOW_JWT_SECRET"):
        env.pop(key, None)
    data = tmp_path / "data"
    launcher = Launcher(data, env)
    try:
        pids = running_pids(data, launcher)
        victim = pids["task-api"]
        psutil.Process(victim).kill()
        pid_file = data / "pids.json"
        until(lambda: json.loads(pid_file.read_text()).get("task-api", victim) != victim)
        assert "exited with code -9; restarting in 0.5s" in launcher.text()

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).is_success
            except httpx.HTTPError:
                return False

        until(ready)
        assert launcher.stop() == 0
    finally:
        if launcher.process.poll() is None:
            launcher.process.kill()
            launcher.process.wait(30)


def test_a_run_after_a_killed_launcher_cleans_up_what_it_left(tmp_path: Path) -> None:
    """SIGKILL cannot be handled: the children (own sessions) survive it. The next `up`
    in the folder stops them, and its own clean stop then leaves nothing, PostgreSQL too."""
    env = os.environ | {
        "TASKFLOW_UP_COMPONENTS": "task-api",
        "TASKFLOW_UP_BROKER_PORT": str(free_port()),
        "TASKFLOW_TASK_API_PORT": str(free_port()),
    }
    for key in ("TASKFLOW_DATABASE_URL", "TASKFLOW_KAFKA_BOOTSTRAP", "TASKFLOW_JWT_SECRET"):
        env.pop(key, None)
    data = tmp_path / "data"
    killed = Launcher(data, env)
    try:
        orphans = running_pids(data, killed)
        os.kill(killed.process.pid, signal.SIGKILL)
        killed.process.wait(30)
        assert not gone(orphans["task-api"]) and not gone(orphans["broker"])

        second = Launcher(data, env)
        try:
            fresh = running_pids(data, second)
            assert "left running: broker, task-api" in second.text()
            assert gone(orphans["task-api"]) and gone(orphans["broker"])
            assert fresh["task-api"] != orphans["task-api"]
            assert second.stop() == 0
            for pid in (*fresh.values(), orphans["postgres"]):
                until(lambda pid=pid: gone(pid))  # type: ignore[misc]
        finally:
            if second.process.poll() is None:
                second.process.kill()
                second.process.wait(30)
    finally:
        for pid in orphans.values() if "orphans" in locals() else ():
            if not gone(pid):
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
