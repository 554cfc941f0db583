"""Task service benchmark: creates/s, latency, and outbox publish lag, on the real stack.

Workload: `--clients` concurrent HTTP/1.1 keep-alive connections POST /api/v1/tasks for
`--seconds` (after a warm-up), against `taskflow serve task-api` on PostgreSQL
(TASKFLOW_TEST_DATABASE_URL or embedded) with the relay publishing to a local Tansu broker.
In the same run, the same load against a bare Quart JSON echo (tests/bench/echo_app.py)
served by the same server: `ratio` is creates/s over echo requests/s (target >= 0.6).
`--server` takes one server or a comma list (hypercorn,uvicorn,granian), each measured in
turn. The load comes from `wrk` (Debian package; as in tech-notes.md) when it is installed,
else from an httpx client in its own process. Prints one JSON line.

    .venv/bin/python -m tests.bench.task_api --clients 32 --seconds 20 [--server uvicorn]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import queue as queue_module
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import psutil

from deploy.broker import free_port
from tests.bench._harness import (
    local_broker,
    percentile,
    postgres_admin_url,
    scratch_database,
    service_process,
)
from webapi.auth import issue_token

SECRET = "bench-secret-" + "x" * 40
BODY = {
    "title": "Benchmark task",
    "due_at": "2026-12-01T09:00:00Z",
    "priority": "high",
    "tags": ["bench"],
    "reminders": [{"before": "PT15M"}],
}


async def _load(url: str, clients: int, seconds: float, warmup: float) -> dict[str, float]:
    token = issue_token(SECRET, "bench-user", ttl=timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        measure_from = time.monotonic() + warmup
        stop_at = measure_from + seconds

        async def worker() -> None:
            nonlocal errors
            while (now := time.monotonic()) < stop_at:
                try:
                    response = await client.post("/api/v1/tasks", json=BODY)
                except httpx.TransportError:  # e.g. a read timeout on a starved machine
                    errors += now >= measure_from
                    continue
                took = time.monotonic() - now
                if now >= measure_from:
                    if response.status_code == 201:
                        latencies.append(took)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
    return {
        "creates": len(latencies),
        "errors": errors,
        "creates_per_s": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def _loader_result(
    loader: multiprocessing.Process, queue: multiprocessing.Queue[dict[str, float]], seconds: float
) -> dict[str, float]:
    """The loader's figures; an error, not a hang, if it dies without sending them (a load
    request that timed out used to kill it and leave the bench waiting forever)."""
    deadline = time.monotonic() + seconds + 120
    while True:
        try:
            load = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not loader.is_alive() or time.monotonic() > deadline:
                loader.kill()
                raise RuntimeError(
                    f"load process ended without figures ({loader.exitcode})"
                ) from None
    loader.join()
    return load


def _load_process(
    url: str,
    clients: int,
    seconds: float,
    warmup: float,
    out: multiprocessing.Queue[dict[str, float]],
) -> None:
    out.put(asyncio.run(_load(url, clients, seconds, warmup)))


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%f %%f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def _echo_load(server: str, clients: int, seconds: float, warmup: float) -> float:
    """Requests/s of the bare echo on `server`, loaded exactly as the task API is."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with service_process(
        ["--server", server, "--port", str(port)],
        {},
        f"{url}/readyz",
        module="tests.bench.echo_app",
    ):
        return _wrk_load(url, clients, seconds, warmup)["creates_per_s"]


def _wrk_load(url: str, clients: int, seconds: float, warmup: float) -> dict[str, float]:
    """Run wrk (warm-up first, unmeasured) and parse the summary its Lua hook prints."""
    token = issue_token(SECRET, "bench-user", ttl=timedelta(hours=1))
    script = WRK_SCRIPT % {"body": json.dumps(BODY), "token": token}
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()

        def wrk(duration: float) -> str:
            return subprocess.run(  # noqa: S603 - fixed arguments
                [
                    "wrk",
                    "-t1",
                    f"-c{clients}",
                    f"-d{max(1, int(duration))}s",
                    "-s",
                    lua.name,
                    f"{url}/api/v1/tasks",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        if warmup:
            wrk(warmup)
        out = wrk(seconds)
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    requests, errors, duration_us, p50_us, p99_us = line.split()[1:]
    took = float(duration_us) / 1e6
    return {
        "creates": float(requests) - float(errors),
        "errors": float(errors),
        "creates_per_s": (float(requests) - float(errors)) / took,
        "p50_ms": float(p50_us) / 1000,
        "p99_ms": float(p99_us) / 1000,
    }


async def _publish_lag(database_url: str) -> dict[str, float]:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 60
        while await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
            if time.monotonic() > deadline:
                raise RuntimeError("outbox did not drain")
            await asyncio.sleep(0.2)
        row = await conn.fetchrow(
            """SELECT
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
                 percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99,
                 count(*) AS n
               FROM (SELECT extract(epoch FROM published_at - created_at) * 1000 AS lag
                     FROM outbox) AS lags"""
        )
        return {
            "lag_p50_ms": float(row["p50"]),
            "lag_p99_ms": float(row["p99"]),
            "events_published": int(row["n"]),
        }
    finally:
        await conn.close()


def _start_profiler(pid: int, seconds: float) -> subprocess.Popen[bytes] | None:
    """With TASKFLOW_BENCH_PYSPY=<file>, py-spy samples the server during the load and
    writes raw (collapsed) stacks there: profile the run the figures come from."""
    out = os.environ.get("TASKFLOW_BENCH_PYSPY")
    if not out:
        return None
    return subprocess.Popen(  # noqa: S603 - fixed arguments
        [
            shutil.which("py-spy") or "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--duration",
            str(max(1, int(seconds))),
            "--format",
            "raw",
            "--nonblocking",
            "-o",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_once(
    clients: int,
    seconds: float,
    warmup: float,
    workers: int = 1,
    use_wrk: bool = True,
    extra_env: Mapping[str, str] | None = None,
    server: str | None = None,
) -> dict[str, Any]:
    """One measured run on a fresh database and broker; `extra_env` goes to the server
    only (e.g. OTEL_* settings), not to this process."""
    from task_api.cli import migrate

    with (
        postgres_admin_url() as admin_url,
        scratch_database(admin_url, "tasks") as db_url,
        local_broker() as (_, kafka),
    ):
        port = free_port()
        env = {
            "TASKFLOW_TASK_API_DATABASE_URL": db_url,
            "TASKFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "TASKFLOW_JWT_SECRET": SECRET,
            "TASKFLOW_LOG_LEVEL": "WARNING",
            "TASKFLOW_TASK_API_WORKERS": str(workers),
            **({"TASKFLOW_SERVER": server} if server else {}),
        }
        os.environ.update(env)  # `migrate` below reads the same settings
        asyncio.run(migrate())
        url = f"http://127.0.0.1:{port}"
        with service_process(
            ["serve", "task-api", "--port", str(port)],
            {**env, **(extra_env or {})},
            f"{url}/readyz",
        ) as server:
            server_processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children()]
            cpu_before = sum(sum(p.cpu_times()[:2]) for p in server_processes)
            profiler = _start_profiler(server.pid, warmup + seconds)
            if use_wrk:
                load = _wrk_load(url, clients, seconds, warmup)
            else:
                queue: multiprocessing.Queue[dict[str, float]] = multiprocessing.Queue()
                loader = multiprocessing.Process(
                    target=_load_process, args=(url, clients, seconds, warmup, queue)
                )
                loader.start()
                load = _loader_result(loader, queue, warmup + seconds)
            if profiler is not None:
                profiler.wait()
            rss_mib = sum(p.memory_info().rss for p in server_processes) / 2**20
            # Wait for the outbox to drain while the server (and its relay) still runs.
            lag = asyncio.run(_publish_lag(db_url))
            cpu_ms = (sum(sum(p.cpu_times()[:2]) for p in server_processes) - cpu_before) * 1000
    # CPU per create is steadier than wall-clock rates on a busy machine. Every create
    # (warm-up included) published exactly one event, so divide by events published.
    return {
        **load,
        **lag,
        "server_cpu_ms_per_create": cpu_ms / max(lag["events_published"], 1),
        "server_rss_mib": rss_mib,
        "loader": "wrk" if use_wrk else "httpx",
    }


TARGET_RATIO = 0.6
TARGET_LAG_P99_MS = 20.0


def _measure_server(args: argparse.Namespace, server: str, use_wrk: bool) -> dict[str, Any]:
    result = run_once(args.clients, args.seconds, args.warmup, args.workers, use_wrk, server=server)
    result.pop("loader")
    if use_wrk:
        echo = _echo_load(server, args.clients, args.seconds, args.warmup)
        result["echo_per_s"] = echo
        result["ratio"] = result["creates_per_s"] / echo if echo else float("nan")
    return {"server": server, **{k: round(v, 3) for k, v in result.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--workers", type=int, default=1, help="Hypercorn worker processes")
    parser.add_argument("--server", default="", help="hypercorn, uvicorn, granian or a list")
    parser.add_argument("--loader", choices=["auto", "wrk", "httpx"], default="auto")
    args = parser.parse_args()
    use_wrk = args.loader == "wrk" or (args.loader == "auto" and shutil.which("wrk") is not None)
    from task_api.cli import DEFAULT_SERVER

    servers = [s.strip() for s in args.server.split(",") if s.strip()] or [DEFAULT_SERVER]
    runs = [_measure_server(args, server, use_wrk) for server in servers]
    targets = {
        run["server"]: {
            "ratio_ge_0.6": "met" if run.get("ratio", 0) >= TARGET_RATIO else "not met",
            "lag_p99_le_20ms": "met" if run["lag_p99_ms"] <= TARGET_LAG_P99_MS else "not met",
        }
        for run in runs
    }
    print(
        json.dumps(
            {
                "bench": "task_api",
                "clients": args.clients,
                "workers": args.workers,
                "loader": "wrk" if use_wrk else "httpx",
                "seconds": args.seconds,
                "runs": runs,
                "targets": targets,
                "load_average": os.getloadavg()[0],
                "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
