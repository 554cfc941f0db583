"""Run the real reminder dataflow command in a subprocess; produce and read real Kafka topics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from events.codec import Envelope, decode, encode
from events.kafka import KafkaSettings
from events.payloads import TASK_EVENTS, ReminderSpec

EVENT_TYPES = {cls.event_type: cls for cls in TASK_EVENTS}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class FlowProcess:
    """`python -m bytewax.run pipelines.reminders:flow -r DIR -s N -b 0`, stopped by PID."""

    recovery: Path
    env: dict[str, str]
    log: Path
    snapshot_s: int = 1
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def prepare(cls, tmp: Path, env: dict[str, str], snapshot_s: int = 1) -> FlowProcess:
        recovery = tmp / "recovery"
        recovery.mkdir()
        subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True
        )
        return cls(recovery, {**os.environ, **env}, tmp / "flow.log", snapshot_s)

    def start(self) -> None:
        out = self.log.open("ab")
        cmd = [sys.executable, "-m", "bytewax.run", "pipelines.reminders:flow"]
        cmd += ["-r", str(self.recovery), "-s", str(self.snapshot_s), "-b", "0"]
        self.process = subprocess.Popen(  # noqa: S603
            cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def flow_env(kafka: KafkaSettings, db_url: str, **extra: str) -> dict[str, str]:
    return {
        "TASKFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TASKFLOW_KAFKA_TOPIC_NAMESPACE": kafka.topic_namespace,
        "TASKFLOW_REMINDERS_DATABASE_URL": db_url,
        # Digest windows from the first reminder on (production waits out the restart gap).
        "TASKFLOW_REMINDERS_DIGEST_STARTUP": "PT0S",
        **{f"TASKFLOW_REMINDERS_{k.upper()}": v for k, v in extra.items()},
    }


@dataclass
class TaskWriter:
    """Produces task events the way the task service does (codec, key, headers)."""

    kafka: KafkaSettings
    producer: Producer = field(init=False)

    def __post_init__(self) -> None:
        self.producer = Producer(self.kafka.producer())

    def send(
        self,
        event_type: str,
        task_id: uuid.UUID,
        *,
        user: str,
        version: int,
        due_at: datetime | None,
        before: tuple[timedelta, ...] = (),
        updated_at: datetime | None = None,
        **fields: Any,
    ) -> None:
        now = datetime.now(UTC)
        data: dict[str, Any] = {
            "id": task_id,
            "user_id": user,
            "title": fields.pop("title", f"task {task_id.hex[:6]}"),
            "due_at": due_at,
            "reminders": tuple(ReminderSpec(before=b) for b in before),
            "created_at": now,
            "updated_at": updated_at or now,
            "version": version,
            **fields,
        }
        if event_type == "task.updated":
            data["changed"] = ("due_at",)
        payload = EVENT_TYPES[event_type](**data)
        envelope = Envelope(data=payload, source="/test", subject=str(task_id), user_id=user)
        self.raw(
            str(task_id).encode(),
            encode(envelope),
            [("ce_type", event_type.encode()), ("traceparent", TRACEPARENT.encode())],
        )

    def raw(self, key: bytes, value: bytes, headers: list[tuple[str, str | bytes | None]]) -> None:
        self.producer.produce(self.kafka.topics.tasks, value, key=key, headers=headers)
        assert self.producer.flush(10) == 0


@dataclass
class Received:
    value: Any
    headers: dict[str, bytes]
    key: bytes | None
    at: datetime
    event_id: str | None = None  # the CloudEvent id (decoded values only)


class TopicReader:
    """Reads a whole topic from the beginning with assign() (no group join delay)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.consumer = Consumer(kafka.consumer(f"test-{uuid.uuid4().hex}"))
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.seen: list[Received] = []

    def poll_until(
        self, done: Callable[[list[Received]], bool], timeout: float, decode_values: bool = True
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while not done(self.seen):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s; saw {len(self.seen)}")
            msg = self.consumer.poll(0.05)
            if msg is None or msg.error():
                continue
            envelope = decode(msg.value()) if decode_values else None
            value = envelope.data if envelope is not None else msg.value()
            raw_headers = msg.headers() or []
            pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
            headers = {k: v for k, v in pairs if isinstance(v, bytes)}
            event_id = str(envelope.id) if envelope is not None else None
            self.seen.append(Received(value, headers, msg.key(), datetime.now(UTC), event_id))
        return self.seen

    def close(self) -> None:
        self.consumer.close()


def read_distinct(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list[bytes]:
    """Values in log order until `expected` distinct ones were read (re-sends may repeat
    a message: the broker may still take the first copy when it wakes up)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(set(values)) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            value = msg.value() if msg is not None and msg.error() is None else None
            if value is not None:
                values.append(value)
        return values
    finally:
        consumer.close()
