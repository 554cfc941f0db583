"""Poison messages on every consumed topic, and the DLQ they must end up in: once per
consumer that reads that topic, and nothing else in the DLQ."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from events.dlq import CONSUMER, SOURCE_TOPIC
from events.topics import Topics
from tests.chaos.oracle import Verdict

MARKER = "chaos.poison"
TOPICS = Topics()
# Who dead-letters what (the `dlq.consumer` header): the hub only reads
# taskflow.notifications to forward frames and skips what it cannot read.
CONSUMERS = {
    TOPICS.tasks: {"pipelines.audit", "pipelines.reminders", "notify-worker"},
    TOPICS.reminders: {"pipelines.audit", "notify-worker"},
    TOPICS.notifications: {"pipelines.audit"},
}


@dataclass(frozen=True, slots=True)
class Poison:
    marker: str
    topic: str
    kind: str


def _bodies() -> list[tuple[str, bytes]]:
    """Garbage bytes, and CloudEvents that are well formed but wrong."""
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/chaos",
        "time": "2030-01-01T00:00:00+00:00",
        "subject": "chaos",
        "userid": "mallory",
        "dataversion": "1",
    }
    return [
        ("garbage", os.urandom(64)),
        ("not json", b"{chaos: not json"),
        ("json array", b"[1, 2, 3]"),
        ("bad payload", json.dumps(event | {"type": "task.created", "data": {"id": 7}}).encode()),
        ("unknown type", json.dumps(event | {"type": "task.exploded", "data": {}}).encode()),
        ("no data", json.dumps(event | {"type": "task.updated"}).encode()),
    ]


def inject(bootstrap: str) -> list[Poison]:
    """Produce each poison body once to every consumed topic; returns what was sent."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent: list[Poison] = []
    errors: list[str] = []
    for topic in CONSUMERS:
        for kind, body in _bodies():
            marker = uuid.uuid4().hex
            producer.produce(
                topic,
                body,
                key=f"chaos-{marker}".encode(),
                headers=[(MARKER, marker.encode())],
                on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
            )
            sent.append(Poison(marker, topic, kind))
    assert producer.flush(30) == 0 and not errors, f"poison not delivered: {errors}"
    return sent


def read_dlq(bootstrap: str, idle: float = 2.0, timeout: float = 30.0) -> list[dict[str, str]]:
    """Every DLQ message from the beginning (assign(), no group), as header dicts.

    Read until nothing came for `idle` seconds: Tansu's high watermark cannot be trusted.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-dlq-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    try:
        meta = consumer.list_topics(TOPICS.dlq, timeout=10).topics[TOPICS.dlq]
        consumer.assign([TopicPartition(TOPICS.dlq, p, OFFSET_BEGINNING) for p in meta.partitions])
        letters: list[dict[str, str]] = []
        last = time.monotonic()
        deadline = last + timeout
        while time.monotonic() - last < idle and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            last = time.monotonic()
            headers = msg.headers() or []
            letters.append({k: (v or b"").decode("utf-8", "replace") for k, v in headers})
        return letters
    finally:
        consumer.close()


def judge_dlq(letters: list[dict[str, str]], sent: list[Poison], verdict: Verdict) -> None:
    """Each poison message dead-lettered once by each consumer of its topic; nothing else."""
    seen = Counter((h.get(MARKER), h.get(CONSUMER)) for h in letters)
    for (marker, consumer), count in seen.items():
        if marker is None:
            verdict.unexpected.add(("dlq", str(consumer), "not a poison message"))
        elif count > 1:
            verdict.duplicated.add(("dlq", marker, str(consumer)))
    for poison in sent:
        for consumer in CONSUMERS[poison.topic]:
            if (poison.marker, consumer) not in seen:
                verdict.lost.add(("dlq", poison.marker, consumer, poison.topic, poison.kind))
    for h in letters:
        marker = h.get(MARKER)
        if marker is not None and h.get(SOURCE_TOPIC) not in CONSUMERS:
            verdict.unexpected.add(("dlq source", marker, str(h.get(SOURCE_TOPIC))))
    verdict.stats["dlq"] = len(letters)
    verdict.stats["poison"] = len(sent)
