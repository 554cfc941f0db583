"""`QuietFetch` against Tansu: a quiet consumer stops fetching, and what comes while it is
paused, or across a rebalance, still arrives once."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from events.kafka import KafkaSettings
from events.quiet import QuietFetch

DEADLINE_S = 30.0


class FetchCount:
    """librdkafka's own count of Fetch requests sent, from its statistics."""

    def __init__(self) -> None:
        self.latest = 0
        self.reports = 0

    def __call__(self, stats: str) -> None:
        brokers = json.loads(stats)["brokers"].values()
        self.latest = sum(b["req"].get("Fetch", 0) for b in brokers)
        self.reports += 1


def until(quiet: QuietFetch, done: Callable[[], bool], got: list[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, "deadline passed"
        got += [m.value() for m in quiet.poll(100, 0.1) if m.error() is None]


@pytest.fixture
def producer(kafka_settings: KafkaSettings) -> Iterator[Producer]:
    producer = Producer(kafka_settings.producer())
    yield producer
    producer.flush(10)


def quiet_consumer(
    settings: KafkaSettings,
    group: str,
    fetches: FetchCount | None = None,
    assignments: list[int] | None = None,
) -> tuple[Consumer, QuietFetch]:
    """A consumer of tasks and reminders behind a `QuietFetch`; each assignment's size is
    appended to `assignments` (asking the consumer from another thread mid-rebalance can
    block)."""
    extra: dict[str, Any] = {"fetch.wait.max.ms": 20}
    if fetches is not None:
        extra |= {"statistics.interval.ms": 100, "stats_cb": fetches}
    consumer = Consumer(settings.consumer(group, **extra))
    quiet = QuietFetch(consumer, quiet_after=0.3, check_every=0.05)

    def on_assign(_consumer: Any, partitions: list[Any]) -> None:
        quiet.assigned()
        if assignments is not None:
            assignments.append(len(partitions))

    consumer.subscribe([settings.topics.tasks, settings.topics.reminders], on_assign=on_assign)
    return consumer, quiet


def send(producer: Producer, topic: str, value: bytes, partition: int = 0) -> None:
    producer.produce(topic, value, partition=partition)
    assert producer.flush(10) == 0


def test_a_paused_consumer_sends_no_fetch_and_gets_the_next_message(
    kafka_settings: KafkaSettings, producer: Producer
) -> None:
    fetches = FetchCount()
    consumer, quiet = quiet_consumer(kafka_settings, f"q-{uuid.uuid4().hex[:8]}", fetches)
    topics = kafka_settings.topics
    got: list[bytes] = []
    try:
        send(producer, topics.tasks, b"first")
        until(quiet, lambda: b"first" in got, got)
        until(quiet, lambda: quiet.paused, got)
        # While paused, several statistics reports go by without a Fetch request (at a
        # 20 ms wait, a fetching consumer sends ~5 between two reports). The count starts
        # two reports after the pause: a report can be older than the last fetches.
        reports = fetches.reports
        until(quiet, lambda: fetches.reports >= reports + 2, got)
        before, reports = fetches.latest, fetches.reports
        until(quiet, lambda: fetches.reports >= reports + 5, got)
        assert quiet.paused
        assert fetches.latest == before

        send(producer, topics.reminders, b"second", partition=2)
        until(quiet, lambda: b"second" in got, got)
        assert not quiet.paused
        assert got == [b"first", b"second"]
    finally:
        consumer.close()


def test_a_rebalance_while_paused_loses_and_repeats_nothing(
    kafka_settings: KafkaSettings, producer: Producer
) -> None:
    group = f"q-{uuid.uuid4().hex[:8]}"
    topics = kafka_settings.topics
    first_assigned: list[int] = []
    second_assigned: list[int] = []
    first, first_quiet = quiet_consumer(kafka_settings, group, assignments=first_assigned)
    got: list[bytes] = []
    other_got: list[bytes] = []
    stop = threading.Event()
    try:
        send(producer, topics.tasks, b"warm")
        until(first_quiet, lambda: b"warm" in got, got)
        first.commit(offsets=[TopicPartition(topics.tasks, 0, 1)], asynchronous=False)
        until(first_quiet, lambda: first_quiet.paused, got)

        # A second member joins: the group takes the first one's partitions back and
        # shares them out, while the first is paused.
        second, second_quiet = quiet_consumer(kafka_settings, group, assignments=second_assigned)

        def run_second() -> None:
            while not stop.is_set():
                other_got.extend(m.value() for m in second_quiet.poll(100, 0.1) if not m.error())

        thread = threading.Thread(target=run_second, daemon=True)
        thread.start()
        total = kafka_settings.partitions * 2

        def split() -> bool:
            return (
                len(first_assigned) >= 2
                and bool(second_assigned)
                and first_assigned[-1] + second_assigned[-1] == total
                and second_assigned[-1] > 0
            )

        until(first_quiet, split, got)
        sent = [f"{topic}-{p}".encode() for topic in (topics.tasks, topics.reminders)
                for p in range(kafka_settings.partitions)]  # fmt: skip
        for value in sent:
            topic, _, partition = value.decode().rpartition("-")
            send(producer, topic, value, int(partition))
        until(first_quiet, lambda: len(got) + len(other_got) >= len(sent) + 1, got)
        stop.set()
        thread.join(timeout=10)
        second.close()
        assert sorted(got + other_got) == sorted([b"warm", *sent])
        assert got and other_got  # both members had a share
    finally:
        stop.set()
        first.close()
