"""A quiet consumer on Tansu: what it costs the broker, and how late the next message is,
for each check interval of `QuietFetch` (0: fetching all the time, as before).

Workload: a local Tansu with two topics of one partition and one consumer of both (the
notification worker's shape: 20 ms fetch wait, quiet after 1 s). Per interval, `--rounds`
times alternating: the broker's CPU over `--idle` seconds of nothing, then `--messages`
messages, each produced 1.5–2.5 s after the last (so the consumer has gone quiet), and
each one's produce → poll latency. Prints one JSON line.

    .venv/bin/python -m tests.bench.quiet_fetch --checks-ms 0,50,100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
import uuid
from typing import Any

import psutil
from confluent_kafka import Consumer, Producer

from events.kafka import KafkaSettings
from events.quiet import QuietFetch
from tests.bench._harness import local_broker, percentile, process_cpu_seconds

FETCH_WAIT_MS = 20
QUIET_AFTER_S = 1.0


def _one_round(
    kafka: KafkaSettings, broker: psutil.Process, check_ms: int, idle_s: float, messages: int
) -> dict[str, Any]:
    topics = [kafka.topics.tasks, kafka.topics.reminders]
    run = uuid.uuid4().hex[:8]  # the topics outlive a round: its messages carry its id
    wait = {"fetch.wait.max.ms": FETCH_WAIT_MS}
    consumer = Consumer(kafka.consumer(f"quiet-bench-{run}", **wait))
    quiet = QuietFetch(consumer, quiet_after=QUIET_AFTER_S, check_every=check_ms / 1000)
    consumer.subscribe(topics, on_assign=lambda _c, _p: quiet.assigned())
    producer = Producer(kafka.producer())
    arrived: dict[bytes, float] = {}
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for msg in quiet.poll(100, 0.25):
                if msg.error() is None:
                    arrived[msg.value()] = time.monotonic()

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        warm_up = f"{run}-warm-up".encode()
        producer.produce(topics[0], warm_up)
        producer.flush(10)
        deadline = time.monotonic() + 60
        while warm_up not in arrived:
            if time.monotonic() > deadline:
                raise TimeoutError("the consumer never got its partitions")
            time.sleep(0.05)
        time.sleep(QUIET_AFTER_S + 1)  # gone quiet (or still fetching, at 0)
        cpu0, t0 = process_cpu_seconds(broker), time.monotonic()
        time.sleep(idle_s)
        idle_cores = (process_cpu_seconds(broker) - cpu0) / (time.monotonic() - t0)
        latencies = []
        for n in range(messages):
            time.sleep(1.5 + random.random())
            value = f"{run}-{n}".encode()
            sent = time.monotonic()
            producer.produce(topics[n % 2], value)
            producer.flush(10)
            while value not in arrived:
                if time.monotonic() - sent > 30:
                    raise TimeoutError(f"{value!r} never arrived")
                time.sleep(0.001)
            latencies.append((arrived[value] - sent) * 1000)
    finally:
        stop.set()
        thread.join()
        consumer.close()
    return {
        "check_ms": check_ms,
        "broker_idle_cores": round(idle_cores, 4),
        "next_message_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p90": round(percentile(latencies, 0.9), 1),
            "max": round(max(latencies), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks-ms", default="0,50,100", help="check intervals, ms")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measured")
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args()
    checks = [int(c) for c in args.checks_ms.split(",")]
    rounds = []
    with local_broker(partitions=1) as (local, kafka):
        broker = psutil.Process(local.process.pid)
        for _ in range(args.rounds):
            for check_ms in checks:
                namespaced = KafkaSettings(
                    bootstrap=kafka.bootstrap, partitions=1, topic_namespace=kafka.topic_namespace
                )
                rounds.append(_one_round(namespaced, broker, check_ms, args.idle, args.messages))
                print(f"[bench quiet_fetch] {rounds[-1]}", file=sys.stderr, flush=True)
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({
        "bench": "quiet_fetch", "fetch_wait_ms": FETCH_WAIT_MS, "quiet_after_s": QUIET_AFTER_S,
        "rounds": rounds, "machine": machine, "date": time.strftime("%Y-%m-%d"),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
