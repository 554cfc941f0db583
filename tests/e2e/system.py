"""Drive `taskflow up` as a user does (a subprocess in a fresh folder) and talk to it as the
chatbot frontend does (REST with a bearer token, one WebSocket per user)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

from deploy.broker import free_port

PORT_VARS = {
    "task-api": "TASKFLOW_TASK_API_PORT",
    "notify": "TASKFLOW_NOTIFY_PORT",
    "audit": "TASKFLOW_AUDIT_PORT",
    "reminders": "TASKFLOW_REMINDERS_PORT",
}


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll with a deadline; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


T = TypeVar("T")


async def eventually(
    fetch: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float, what: str
) -> T:
    """Call `fetch` until `check` accepts its result, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await fetch()
        if check(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {result!r}")
        await asyncio.sleep(0.2)


@dataclass
class System:
    """One `taskflow up` in `data_dir`, restartable (same folder, same ports)."""

    data_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: {k: free_port() for k in PORT_VARS})
    broker_port: int = field(default_factory=free_port)
    # Settings for every child on top of the defaults (e.g. a short digest window).
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0
    # pid -> create time: a PID is only ours if the process is the one we saw.
    seen: dict[int, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "OTEL_"))}
        env |= {PORT_VARS[name]: str(port) for name, port in self.ports.items()}
        env["TASKFLOW_UP_BROKER_PORT"] = str(self.broker_port)
        env["TASKFLOW_UP_READY_TIMEOUT"] = "90"
        env["TASKFLOW_DATA_DIR"] = str(self.data_dir)
        env |= self.extra_env
        return env

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def output(self) -> Path:
        return self.data_dir.parent / f"up-{self.runs}.out"

    def start(self, timeout: float = 120.0) -> None:
        self.runs += 1
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", "up", "--data-dir", str(self.data_dir)],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while "TaskFlow is up" not in self.output.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"taskflow up did not come up:\n{self.output.read_text()}")
            time.sleep(0.1)
        for pid in self.pids().values():
            with contextlib.suppress(psutil.Error):
                self.seen[pid] = psutil.Process(pid).create_time()

    def pids(self) -> dict[str, int]:
        pid_file = self.data_dir / "pids.json"
        deadline = time.monotonic() + 10
        while not pid_file.exists():
            assert time.monotonic() < deadline, "pids.json missing"
            time.sleep(0.05)
        data: dict[str, int] = json.loads(pid_file.read_text())
        return data

    def stop(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code

    def leftovers(self) -> list[str]:
        """Processes of ours still alive: known pids, or anything naming the data dir."""
        alive = []
        for proc in psutil.process_iter(["pid", "cmdline", "status", "create_time"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            same = self.seen.get(proc.info["pid"]) == proc.info["create_time"]
            ours = same or str(self.data_dir) in cmdline
            if ours and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.info['pid']} {cmdline}")
        return alive

    def kill_everything(self) -> None:
        """Last-resort cleanup after a failed test: by PID only."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        for line in self.leftovers():
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(int(line.split()[0])).kill()

    def keep_logs(self, target: Path) -> None:
        """Copy the launcher's output and every child's log to `target` (replaced)."""
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for out in self.data_dir.parent.glob("up-*.out"):
            shutil.copy(out, target / out.name)
        if (self.data_dir / "logs").is_dir():
            shutil.copytree(self.data_dir / "logs", target / "logs")

    def token(self, user: str, *roles: str) -> str:
        args = [sys.executable, "-m", "deploy.cli", "token", "--user", user]
        for role in roles:
            args += ["--role", role]
        return subprocess.check_output(args, env=self.env(), text=True, timeout=30).strip()


@dataclass
class Frame:
    received_at: datetime
    data: dict[str, Any]


class Client:
    """A chatbot frontend for one user: REST calls and one WebSocket feed."""

    def __init__(self, system: System, user: str, *roles: str) -> None:
        self.system = system
        self.user = user
        self.token = system.token(user, *roles)
        self.http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self.token}"}, timeout=10.0
        )
        self.frames: list[Frame] = []
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open_ws(self, since: int | None = None) -> None:
        query = f"token={self.token}" + (f"&since={since}" if since is not None else "")
        port = self.system.ports["notify"]
        self._ws = await connect(f"ws://127.0.0.1:{port}/ws?{query}")
        self.frames = []
        self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                self.frames.append(Frame(datetime.now(UTC), json.loads(raw)))

    async def close_ws(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader
        self._ws, self._reader = None, None

    async def closed_by_server(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the WebSocket; the close code it sent."""
        assert self._ws is not None and self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        code = self._ws.close_code
        self._ws, self._reader = None, None
        return code

    async def aclose(self) -> None:
        await self.close_ws()
        await self.http.aclose()

    def notifications(self) -> list[dict[str, Any]]:
        return [f.data["notification"] for f in self.frames if f.data["type"] == "notification"]

    def received_at(self, notification_id: str) -> datetime:
        return next(
            f.received_at
            for f in self.frames
            if f.data["type"] == "notification" and f.data["notification"]["id"] == notification_id
        )

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        await until(lambda: len(self.notifications()) >= count, timeout, f"{count} for {self.user}")
        return self.notifications()

    async def call(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, self.system.url(service) + path, **kwargs)
