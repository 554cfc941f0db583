"""The paced source against the real broker: Bytewax's partition really reads through our
waiting consumer (so a quiet flow blocks in librdkafka rather than spinning, and a busy
one gathers there for its share of the interval), and a message produced while it waits
comes out of the very next batches."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Producer

from events.kafka import KafkaSettings
from pipelines.paced_source import PacedKafkaSource, WaitingConsumer

pytestmark = pytest.mark.integration


def paced_source(
    kafka_settings: KafkaSettings, idle_check: timedelta = timedelta(0)
) -> PacedKafkaSource:
    """The tasks topic paced every 50 ms, quiet waits of 200 ms."""
    return PacedKafkaSource(
        timedelta(milliseconds=50),
        [kafka_settings.bootstrap],
        [kafka_settings.topics.tasks],
        tail=True,
        add_config={"fetch.wait.max.ms": "20"},
        batch_size=100,
        idle_wait=timedelta(milliseconds=200),
        idle_check=idle_check,
    )


def next_values(part: Any) -> list[bytes | None]:
    """The values of the first non-empty batch (15 s at most)."""
    deadline = time.monotonic() + 15
    got: list[bytes | None] = []
    while not got and time.monotonic() < deadline:
        got = [m.value for m in part.next_batch()]
    return got


def test_a_quiet_partition_waits_in_librdkafka_and_returns_what_arrives(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.topics.tasks
    source = paced_source(kafka_settings)
    part = source.build_part("flow.in", f"0-{topic}", None)
    try:
        # Bytewax 0.21.1's partition keeps its consumer in `_consumer`: ours stands in.
        assert isinstance(part._inner._consumer, WaitingConsumer)
        part._gate.last_data -= 60  # quiet for a minute

        assert part.next_batch() == []
        assert part._inner._consumer.wait == pytest.approx(0.2)  # it waited in poll
        assert part.next_awake() is None  # and is asked again at once, to wait again

        producer = Producer(kafka_settings.producer())
        producer.produce(topic, b"hello", key=b"k", partition=0)
        assert producer.flush(10) == 0
        assert next_values(part) == [b"hello"]
        # Data came: no more quiet waits; the partition now gathers in librdkafka for its
        # share of the 50 ms interval (20 ms at most) and is asked again at once.
        assert part._gate.block_seconds() == 0.0
        producer.produce(topic, b"again", key=b"k", partition=0)
        assert producer.flush(10) == 0
        deadline = time.monotonic() + 15
        got: list[bytes | None] = []
        while not got and time.monotonic() < deadline:
            got = [m.value for m in part.next_batch()]
            assert part._inner._consumer.wait == 0.0
            assert part._inner._consumer.collect == pytest.approx(0.02)
            assert part.next_awake() is None
        assert got == [b"again"]
    finally:
        part.close()


def test_with_a_check_a_quiet_partition_pauses_at_its_resume_offset_and_finds_new_data(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.topics.tasks
    producer = Producer(kafka_settings.producer())
    producer.produce(topic, b"before the restart", key=b"k", partition=0)
    assert producer.flush(10) == 0
    source = paced_source(kafka_settings, idle_check=timedelta(milliseconds=100))
    # Resumed after that message, as a flow restarting from its snapshot: nothing to read.
    part = source.build_part("flow.in", f"0-{topic}", 1)
    try:
        waiting = part._inner._consumer
        part._gate.last_data -= 60  # quiet for a minute
        deadline = time.monotonic() + 15
        while not waiting.paused:
            assert time.monotonic() < deadline, "never paused"
            assert part.next_batch() == []

        producer.produce(topic, b"hello", key=b"k", partition=0)
        assert producer.flush(10) == 0
        assert next_values(part) == [b"hello"]
        assert not waiting.paused
    finally:
        part.close()
