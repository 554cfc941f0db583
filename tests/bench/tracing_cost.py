"""What tracing costs the task service: the task_api benchmark workload, tracing off and on.

Off: OTEL_SDK_DISABLED=true (instrumentation in place, no-op tracers). Default: the shipped
sampling (parent-based, 1 in 10; target <= 10 % fewer creates/s than off). On: every
request sampled (OTEL_TRACES_SAMPLER_ARG=1.0; target <= 25 %). Spans are batch-exported
over OTLP/HTTP to a receiver in this process that decodes and counts them. Same workload
as tests/bench/task_api.py (its wrk or httpx load against `taskflow serve task-api` on
PostgreSQL with the relay publishing to a local Tansu broker), rounds alternating the modes
so a neighbour's load on the shared cores hits them alike. The server keeps running until
its outbox has drained, so the relay's publishing counts too. Prints one JSON line: medians
of throughput, latency and server CPU per created task for each mode, the costs and the
targets met or not.

    .venv/bin/python -m tests.bench.tracing_cost --clients 32 --seconds 15 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from collections.abc import Mapping
from typing import Any

from tests.bench.task_api import run_once
from tests.integration.observability.otlp_receiver import Receiver, serve_http

KEEP = ("creates_per_s", "server_cpu_ms_per_create", "p50_ms", "p99_ms", "errors",
        "lag_p50_ms", "lag_p99_ms")  # fmt: skip


def _run(clients: int, seconds: float, warmup: float, otel: Mapping[str, str]) -> dict[str, Any]:
    """One measured run of the task_api bench with these OTEL_* settings on the server."""
    return run_once(clients, seconds, warmup, use_wrk=shutil.which("wrk") is not None,
                    extra_env=otel)  # fmt: skip


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

        def traced(ratio: float | None) -> dict[str, str]:
            export = {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            }
            return export if ratio is None else export | {"OTEL_TRACES_SAMPLER_ARG": str(ratio)}

        modes = {"off": {"OTEL_SDK_DISABLED": "true"}, "default": traced(None), "on": traced(1.0)}
        modes |= {f"on_ratio_{r}": traced(r) for r in args.also_ratio}
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for round_no in range(1, args.rounds + 1):
            for mode, otel in modes.items():
                print(f"round {round_no}/{args.rounds}: tracing {mode} ...", file=sys.stderr,
                      flush=True)  # fmt: skip
                runs[mode].append(_run(args.clients, args.seconds, args.warmup, otel))

    def median(mode: str) -> dict[str, float]:
        return {k: round(statistics.median(r[k] for r in runs[mode]), 3) for k in KEEP}

    off, on, default = median("off"), median("on"), median("default")
    throughput = on["creates_per_s"] / off["creates_per_s"]
    default_cost = (1 - default["creates_per_s"] / off["creates_per_s"]) * 100
    cpu = on["server_cpu_ms_per_create"] / off["server_cpu_ms_per_create"]
    print(json.dumps({
        "bench": "tracing_cost",
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "loader": runs["off"][0]["loader"],
        "off": off,
        "default": default,
        "default_throughput_cost_pct": round(default_cost, 1),
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
        "targets": {
            "default_cost_le_10pct": "met" if default_cost <= 10 else "not met",
            "ratio_1_cost_le_25pct": "met" if (1 - throughput) * 100 <= 25 else "not met",
        },
        "spans_exported": len(receiver.snapshot()),
        "export_requests_rejected": len(receiver.rejected),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
    }))  # fmt: skip


if __name__ == "__main__":
    main()
