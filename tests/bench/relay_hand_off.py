"""The relay's hand-off against its claim, side by side in one run.

Workload: the task service app in this process (Quart's test client, no HTTP server) on
PostgreSQL (TASKFLOW_TEST_DATABASE_URL or embedded) and a local Tansu; `--creates` POSTs
one at a time, `--gap-ms` apart (one change travelling alone, as at 50/s), first with
`relay_hand_off=false` (every event claimed back from the table) then with the hand-off,
`--rounds` times alternating. Per create: this process's CPU (app, relay and test
client), PostgreSQL's (all its processes) and the broker's. Prints one JSON line with
every round and the median ratio hand-off / claim.

    .venv/bin/python -m tests.bench.relay_hand_off --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import psutil

from deploy.broker import LocalBroker
from events.kafka import KafkaSettings
from task_api.app import create_app
from task_api.settings import Config, TaskApiSettings
from tests.bench._harness import (
    local_broker,
    postgres_admin_url,
    process_cpu_seconds,
    scratch_database,
)
from webapi.auth import AuthSettings, issue_token

SECRET = "bench-secret-" + "x" * 32
WARM_UP_CREATES = 50


def _postgres_cpu_seconds() -> float:
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        name = process.info["name"] or ""
        if name.startswith("postgres"):
            total += process.info["cpu_times"].user + process.info["cpu_times"].system
    return total


def _migrate(url: str) -> None:
    from task_api.cli import migrate

    os.environ["TASKFLOW_TASK_API_DATABASE_URL"] = url
    asyncio.run(migrate())


async def _creates(
    config: Config, broker: LocalBroker, creates: int, gap: float, concurrency: int
) -> dict[str, float]:
    app = create_app(config)
    auth = {"Authorization": f"Bearer {issue_token(SECRET, 'bench-user')}"}
    me, broker_process = psutil.Process(), psutil.Process(broker.process.pid)
    async with app.test_app():
        client = app.test_client()
        for n in range(WARM_UP_CREATES):
            await client.post("/api/v1/tasks", json={"title": f"warm {n}"}, headers=auth)
        await asyncio.sleep(1.0)

        async def writer(count: int) -> None:
            for n in range(count):
                reply = await client.post("/api/v1/tasks", json={"title": f"t{n}"}, headers=auth)
                if reply.status_code != 201:
                    raise RuntimeError(f"create answered {reply.status_code}")
                await asyncio.sleep(gap)

        before = (
            process_cpu_seconds(me),
            _postgres_cpu_seconds(),
            process_cpu_seconds(broker_process),
        )
        started = time.monotonic()
        await asyncio.gather(*(writer(creates // concurrency) for _ in range(concurrency)))
        took = time.monotonic() - started
        await asyncio.sleep(0.5)  # the last deliveries and marks
        after = (
            process_cpu_seconds(me),
            _postgres_cpu_seconds(),
            process_cpu_seconds(broker_process),
        )
    app_ms, pg_ms, broker_ms = (
        (b - a) * 1000 / creates for a, b in zip(before, after, strict=True)
    )
    return {
        "creates_per_s": round(creates / took, 1),
        "app_ms": round(app_ms, 3),
        "postgres_ms": round(pg_ms, 3),
        "broker_ms": round(broker_ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--creates", type=int, default=800)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=1, help="writers at once")
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    with postgres_admin_url() as admin, local_broker(partitions=1) as (broker, kafka):
        for round_no in range(args.rounds):
            for hand_off in (False, True):
                with scratch_database(admin, "hand_off") as url:
                    _migrate(url)
                    config = Config(
                        service=TaskApiSettings(database_url=url, relay_hand_off=hand_off),
                        kafka=KafkaSettings(
                            bootstrap=kafka.bootstrap,
                            topic_namespace=kafka.topic_namespace,
                            partitions=1,
                        ),
                        auth=AuthSettings(jwt_secret=SECRET),
                    )
                    figures = asyncio.run(
                        _creates(config, broker, args.creates, args.gap_ms / 1000, args.concurrency)
                    )
                rounds.append({"round": round_no, "hand_off": hand_off, **figures})
                print(f"[bench relay_hand_off] {rounds[-1]}", file=sys.stderr, flush=True)
    ratios = {
        key: round(
            statistics.median(
                on[key] / off[key]
                for off, on in zip(rounds[::2], rounds[1::2], strict=True)
                if off[key] > 0
            ),
            3,
        )
        for key in ("app_ms", "postgres_ms", "broker_ms")
    }
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({
        "bench": "relay_hand_off", "creates": args.creates, "gap_ms": args.gap_ms,
        "concurrency": args.concurrency,
        "rounds": rounds, "median_ratio_hand_off_over_claim": ratios,
        "machine": machine, "date": time.strftime("%Y-%m-%d"),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
