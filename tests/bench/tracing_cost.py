"""What tracing costs the task service: the task_api benchmark workload, tracing off and on.

Off: OTEL_SDK_DISABLED=true (instrumentation in place, no-op tracers). On: every request
sampled (OTEL_TRACES_SAMPLER_ARG=1.0) and batch-exported over OTLP/HTTP to a receiver in
this process that decodes and counts the spans. Same workload as tests/bench/task_api.py
(its wrk or httpx load against `taskflow serve task-api` on PostgreSQL with the relay
publishing to a local Tansu broker), rounds alternating off/on so a neighbour's load on
the shared cores hits both alike. The server keeps running until its outbox has drained,
so the relay's publishing counts too. Prints one JSON line: medians of throughput,
latency and server CPU per created task for both, and the ratios (target: <= 15 % cost).

    .venv/bin/python -m tests.bench.tracing_cost --clients 32 --seconds 15 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
from collections.abc import Mapping
from typing import Any

import psutil

from deploy.broker import free_port
from tests.bench._harness import local_broker, postgres_admin_url, scratch_database, service_process
from tests.bench.task_api import SECRET, _load_process, _publish_lag, _wrk_load
from tests.integration.observability.otlp_receiver import Receiver, serve_http

KEEP = ("creates_per_s", "server_cpu_ms_per_create", "p50_ms", "p99_ms", "errors",
        "lag_p50_ms", "lag_p99_ms")  # fmt: skip


def _cpu(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def _run(clients: int, seconds: float, warmup: float, otel: Mapping[str, str]) -> dict[str, Any]:
    """One measured run on a fresh database and broker."""
    from task_api.cli import migrate

    use_wrk = shutil.which("wrk") is not None
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
            **otel,
        }
        os.environ.update({k: v for k, v in env.items() if k.startswith("TASKFLOW_")})
        asyncio.run(migrate())
        url = f"http://127.0.0.1:{port}"
        with service_process(
            ["serve", "task-api", "--port", str(port)], env, f"{url}/readyz"
        ) as srv:
            server = [psutil.Process(srv.pid), *psutil.Process(srv.pid).children()]
            before = _cpu(server)
            if use_wrk:
                load = _wrk_load(url, clients, seconds, warmup)
            else:
                queue: multiprocessing.Queue[dict[str, float]] = multiprocessing.Queue()
                loader = multiprocessing.Process(
                    target=_load_process, args=(url, clients, seconds, warmup, queue)
                )
                loader.start()
                load = queue.get()
                loader.join()
            lag = asyncio.run(_publish_lag(db_url))  # waits for the relay to drain
            cpu_ms = (_cpu(server) - before) * 1000
    # Every create (warm-up included) published one event: CPU per create.
    return {**load, **lag, "server_cpu_ms_per_create": cpu_ms / max(lag["events_published"], 1),
            "loader": "wrk" if use_wrk else "httpx"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    # Extra sampling ratios to measure besides 1.0 (e.g. "0.1"): what sampling buys back.
    parser.add_argument("--also-ratio", type=float, action="append", default=[])
    args = parser.parse_args()
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        del os.environ[name]  # only the modes below decide

    receiver = Receiver()
    with serve_http(receiver) as url:

        def traced(ratio: float) -> dict[str, str]:
            return {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_SAMPLER_ARG": str(ratio),
            }

        modes = {"off": {"OTEL_SDK_DISABLED": "true"}, "on": traced(1.0)}
        modes |= {f"on_ratio_{r}": traced(r) for r in args.also_ratio}
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for round_no in range(1, args.rounds + 1):
            for mode, otel in modes.items():
                print(f"round {round_no}/{args.rounds}: tracing {mode} ...", file=sys.stderr,
                      flush=True)  # fmt: skip
                runs[mode].append(_run(args.clients, args.seconds, args.warmup, otel))

    def median(mode: str) -> dict[str, float]:
        return {k: round(statistics.median(r[k] for r in runs[mode]), 3) for k in KEEP}

    off, on = median("off"), median("on")
    throughput = on["creates_per_s"] / off["creates_per_s"]
    cpu = on["server_cpu_ms_per_create"] / off["server_cpu_ms_per_create"]
    print(json.dumps({
        "bench": "tracing_cost",
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "loader": runs["off"][0]["loader"],
        "off": off,
        "on": on,
        "throughput_ratio": round(throughput, 3),
        "throughput_cost_pct": round((1 - throughput) * 100, 1),
        "cpu_per_create_cost_pct": round((cpu - 1) * 100, 1),
        **{
            mode: {
                **median(mode),
                "throughput_cost_pct": round(
                    (1 - median(mode)["creates_per_s"] / off["creates_per_s"]) * 100, 1
                ),
            }
            for mode in runs
            if mode.startswith("on_ratio_")
        },
        "creates_per_s_by_round": {m: [round(r["creates_per_s"], 1) for r in rs]
                                   for m, rs in runs.items()},
        "spans_exported": len(receiver.snapshot()),
        "export_requests_rejected": len(receiver.rejected),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
    }))  # fmt: skip


if __name__ == "__main__":
    main()
