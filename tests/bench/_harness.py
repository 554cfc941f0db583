"""Shared bench plumbing: a Postgres to use, the local broker, a service subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from deploy.broker import LocalBroker, ensure_topics, start_broker
from deploy.database import server_url, start_embedded
from events.kafka import KafkaSettings
from runtime.database import drop_database, ensure_database


@contextmanager
def postgres_admin_url() -> Iterator[str]:
    """TASKFLOW_TEST_DATABASE_URL when set, else an embedded server in a temp dir."""
    url = os.environ.get("TASKFLOW_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="taskflow-bench-pg-") as tmp:
        server = start_embedded(Path(tmp) / "pgdata")
        try:
            yield server_url(server)
        finally:
            server.cleanup()


@contextmanager
def scratch_database(admin_url: str, purpose: str) -> Iterator[str]:
    name = f"bench_{purpose}_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(ensure_database(admin_url, name))
    try:
        yield url
    finally:
        asyncio.run(drop_database(admin_url, name))


@contextmanager
def local_broker(partitions: int = 6) -> Iterator[tuple[LocalBroker, KafkaSettings]]:
    broker = start_broker(die_with_parent=True)
    settings = KafkaSettings(bootstrap=broker.bootstrap, partitions=partitions)
    ensure_topics(settings)
    try:
        yield broker, settings
    finally:
        broker.stop()


# Benchmarks load one user from one address: the rate limits stay on (their cost is in
# the figures) but far out of reach.
BENCH_LIMITS = {
    "TASKFLOW_RATE_LIMIT_PER_USER": "1000000/minute",
    "TASKFLOW_RATE_LIMIT_PER_IP": "1000000/minute",
    "TASKFLOW_WS_CONNECT_LIMIT_PER_USER": "1000000/minute",
    "TASKFLOW_WS_CONNECT_LIMIT_PER_IP": "1000000/minute",
}


@contextmanager
def service_process(
    args: list[str],
    env: dict[str, str],
    ready_url: str,
    timeout: float = 30,
    module: str = "deploy.cli",
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m <module> <args>` (`taskflow <args>` by default) until `ready_url`
    answers 200; stopped by PID afterwards."""
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", module, *args],
        env={**os.environ, **BENCH_LIMITS, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not become ready at {ready_url}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def process_cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU seconds one process has used so far."""
    times = process.cpu_times()
    return float(times.user + times.system)
