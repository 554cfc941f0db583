"""The asyncio producer against a real broker: headers, delivery futures, fatal errors."""

from __future__ import annotations

import pytest

from deploy.broker import LocalBroker, ensure_topics, free_port, start_broker
from events.errors import PublishError
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from tests.kafka_helpers import TopicReader, headers_of


async def test_delivery_future_and_headers_round_trip(kafka_settings: KafkaSettings) -> None:
    producer = AsyncProducer(kafka_settings.producer())
    reader = TopicReader(kafka_settings, kafka_settings.topics.tasks)
    try:
        await producer.warm_up(kafka_settings.topics.tasks)
        delivered = await producer.produce(
            kafka_settings.topics.tasks, b"v", "k", [("traceparent", b"00-abc"), ("x", "y")]
        )
        assert delivered.error() is None and delivered.offset() is not None
        (msg,) = await reader.wait_count(1)
        assert msg.key() == b"k" and msg.value() == b"v"
        assert headers_of(msg) == {"traceparent": "00-abc", "x": "y"}
    finally:
        reader.close()
        await producer.close()


def own_broker(prefix: str) -> tuple[int, LocalBroker, KafkaSettings]:
    """A broker for one test to stop, freeze or restart (its port, the broker, settings
    whose messages time out after 2 s), with the topics created."""
    port = free_port()
    broker = start_broker(port, die_with_parent=True)
    settings = KafkaSettings(bootstrap=broker.bootstrap, topic_namespace=f"{prefix}{port}.")
    settings = settings.with_extra(**{"message.timeout.ms": "2000"})
    ensure_topics(settings)
    return port, broker, settings


async def test_broker_that_forgot_us_fails_fast_and_a_new_producer_delivers() -> None:
    port, broker, settings = own_broker("f")
    producer = AsyncProducer(settings.producer())
    try:
        await producer.produce(settings.topics.tasks, b"1", "k")
        broker.stop()
        with pytest.raises(PublishError):
            await producer.produce(settings.topics.tasks, b"2", "k")
        broker = start_broker(
            port, die_with_parent=True
        )  # an empty broker: our idempotent producer id is unknown
        ensure_topics(settings)
        with pytest.raises(PublishError):
            for _ in range(3):  # the first send after the restart may still be in flight
                await producer.produce(settings.topics.tasks, b"3", "k")
        assert producer.fatal_error is not None
        with pytest.raises(PublishError):
            await producer.produce(settings.topics.tasks, b"4", "k")  # fails at once

        replacement = AsyncProducer(settings.producer())
        delivered = await replacement.produce(settings.topics.tasks, b"5", "k")
        assert delivered.error() is None
        await replacement.close()
    finally:
        await producer.close()
        broker.stop()


async def test_after_a_frozen_broker_a_renewed_producer_delivers() -> None:
    _, broker, settings = own_broker("z")
    producer = AsyncProducer(settings.producer())
    try:
        await producer.produce(settings.topics.tasks, b"1", "k")
        broker.freeze()  # unreachable, as in the chaos suite's broker-freeze
        with pytest.raises(PublishError):
            await producer.produce(settings.topics.tasks, b"2", "k")
        broker.thaw()
        producer.renew()
        delivered = await producer.produce(settings.topics.tasks, b"3", "k")
        assert delivered.error() is None and delivered.value() == b"3"
    finally:
        await producer.close()
        broker.stop()
