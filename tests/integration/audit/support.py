"""Helpers for audit integration tests: produce to Tansu, run the real dataflow CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage

from audit_store.records import AuditRecord, Origin, Poison, to_record
from events.kafka import KafkaSettings
from tests.unit.audit.factories import TRACEPARENT

Message = tuple[str, bytes | None, bytes | None]  # topic, key, value


def produce(settings: KafkaSettings, messages: Iterable[Message], partition: int = -1) -> int:
    """Produce and wait for every delivery; returns the count."""
    producer = Producer(settings.producer(**{"linger.ms": 5}))
    errors: list[str] = []
    count = 0
    for topic, key, value in messages:
        producer.produce(
            topic,
            value,
            key=key,
            partition=partition,
            headers=[("traceparent", TRACEPARENT.encode()), ("ce_type", b"test")],
            on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
        )
        count += 1
        if count % 5000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]
    return count


def flow_env(kafka: KafkaSettings, database_url: str, tail: bool, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TASKFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "TASKFLOW_KAFKA_TOPIC_NAMESPACE": kafka.topic_namespace,
            "TASKFLOW_AUDIT_DATABASE_URL": database_url,
            "TASKFLOW_AUDIT_FLOW_TAIL": "true" if tail else "false",
            "OTEL_TRACES_EXPORTER": "none",
        }
    )
    env.update(extra)
    return env


def init_recovery(directory: Path, partitions: int = 1) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(directory), str(partitions)],
        check=True,
        capture_output=True,
    )


def start_flow(
    env: dict[str, str],
    recovery: Path,
    workers: int = 2,
    log: Path | None = None,
    cluster: tuple[int, str] | None = None,
) -> subprocess.Popen[bytes]:
    """The real command of docs/audit.md, in its own process group.

    `cluster` = (process id, "host:port;host:port") runs it as one of several processes.
    """
    extra = ["-i", str(cluster[0]), "-a", cluster[1]] if cluster else []
    with open(log or os.devnull, "ab") as out:  # the child keeps its own copy of the fd
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bytewax.run",
                "pipelines.audit:flow",
                "-r",
                str(recovery),
                "-s",
                "1",
                "-b",
                "0",
                "-w",
                str(workers),
                *extra,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_flow_to_end(
    env: dict[str, str], recovery: Path, workers: int = 2, timeout: float = 120
) -> None:
    """A bounded run (tail=false): returns when the flow has read to the end of its topics."""
    log = recovery.parent / "flow.log"
    proc = start_flow(env, recovery, workers, log)
    try:
        code = proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log.read_text()[-3000:]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def read_topic(
    settings: KafkaSettings, topic: str, partitions: int, expected: int
) -> list[KafkaMessage]:
    """Every message of `topic` (assign, no group); waits for `expected` with a deadline."""
    consumer = Consumer(settings.consumer("audit-test-reader"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[KafkaMessage] = []
    deadline = time.monotonic() + 20
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got.append(msg)
    finally:
        consumer.close()
    return got


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Async poll of `predicate` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)  # poll interval, not a wait for an outcome


def records(
    payloads: Iterable[tuple[bytes, str]],
    topic: str = "taskflow.tasks",
    partition: int = 0,
    first_offset: int = 0,
) -> list[AuditRecord | Poison]:
    """Decoded items as the dataflow hands them to the sink, at consecutive offsets."""
    return [
        to_record(Origin(topic, partition, first_offset + i, None), user.encode(), value, [])
        for i, (value, user) in enumerate(payloads)
    ]


class ListDeadLetters:
    """Fake DLQ for store-level tests."""

    def __init__(self) -> None:
        self.sent: list[Poison] = []

    def send(self, poison: Sequence[Poison]) -> None:
        self.sent.extend(poison)
