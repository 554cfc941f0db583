"""Benchmark: how long `taskflow up` takes to be ready and to stop, first run and restart.

Workload: `taskflow up` in a fresh temporary folder (embedded PostgreSQL, local broker, all
four services and both dataflows) started, stopped with SIGTERM, started again in the same
folder (the restart path: republish snapshots) and stopped. Prints one JSON line:
  {"first_ready_s", "first_stop_s", "restart_ready_s", "restart_stop_s"}
Run: .venv/bin/python tests/bench/up_startup.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy.broker import free_port

PORTS = ("TASKFLOW_TASK_API_PORT", "TASKFLOW_NOTIFY_PORT", "TASKFLOW_AUDIT_PORT")


def run_once(data: Path, env: dict[str, str], label: str) -> tuple[float, float]:
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
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(120)
        print(f"\r{label}: done{' ' * 20}", file=sys.stderr)
        return ready, time.monotonic() - stopping
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
                "first_stop_s": round(first[1], 2),
                "restart_ready_s": round(again[0], 2),
                "restart_stop_s": round(again[1], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
