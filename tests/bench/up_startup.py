"""Benchmark: how long `taskflow up` takes to be ready and to stop, first run and restart.

Workload: `taskflow up` in a fresh temporary folder (embedded PostgreSQL, local broker, all
four services and both dataflows) started, stopped with SIGTERM, started again in the same
folder (the restart path: republish snapshots) and stopped. Right after each "TaskFlow is
up", a user opens a WebSocket and creates a task: the time from that POST to the task's
notification frame is `*_first_frame_s` (target: within 2 s, issue 12 "ready means ready").
Prints one JSON line:
  {"first_ready_s", "first_first_frame_s", "first_stop_s", "restart_ready_s", ...}
Run: .venv/bin/python tests/bench/up_startup.py
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from deploy.broker import free_port
from webapi.auth import issue_token, local_secret

PORTS = ("TASKFLOW_TASK_API_PORT", "TASKFLOW_NOTIFY_PORT", "TASKFLOW_AUDIT_PORT")


async def first_frame(data: Path, env: dict[str, str]) -> float:
    """Seconds from a user's first POST /api/v1/tasks to its notification frame."""
    token = issue_token(local_secret(data), "first-user")
    notify, api = env["TASKFLOW_NOTIFY_PORT"], env["TASKFLOW_TASK_API_PORT"]
    async with connect(f"ws://127.0.0.1:{notify}/ws?token={token}") as ws:
        await ws.recv()  # the unread count: connected
        began = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as client:
            created = await client.post(
                f"http://127.0.0.1:{api}/api/v1/tasks",
                json={"title": "first task"},
                headers={"Authorization": f"Bearer {token}"},
            )
            created.raise_for_status()
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if frame.get("type") == "notification":
                return time.monotonic() - began


def run_once(data: Path, env: dict[str, str], label: str) -> tuple[float, float, float]:
    out = data.parent / f"{label}.out"
    began = time.monotonic()
    with open(out, "wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "-m", "deploy.cli", "up", "--data-dir", str(data)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while "TaskFlow is up" not in out.read_text():
            if process.poll() is not None or time.monotonic() - began > 180:
                raise SystemExit(f"{label}: did not come up:\n{out.read_text()}")
            print(f"\r{label}: starting {time.monotonic() - began:5.1f}s", end="", file=sys.stderr)
            time.sleep(0.05)
        ready = time.monotonic() - began
        frame = asyncio.run(first_frame(data, env))
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(120)
        print(f"\r{label}: done{' ' * 20}", file=sys.stderr)
        return ready, frame, time.monotonic() - stopping
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    env |= {name: str(free_port()) for name in (*PORTS, "TASKFLOW_REMINDERS_PORT")}
    env["TASKFLOW_UP_BROKER_PORT"] = str(free_port())
    with tempfile.TemporaryDirectory(prefix="taskflow-bench-") as tmp:
        data = Path(tmp) / "data"
        first = run_once(data, env, "first")
        again = run_once(data, env, "restart")
    print(
        json.dumps(
            {
                "first_ready_s": round(first[0], 2),
                "first_first_frame_s": round(first[1], 3),
                "first_stop_s": round(first[2], 2),
                "restart_ready_s": round(again[0], 2),
                "restart_first_frame_s": round(again[1], 3),
                "restart_stop_s": round(again[2], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
