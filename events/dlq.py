"""Dead-letter helper: a message no consumer could handle goes to `taskflow.dlq`."""

from __future__ import annotations

import asyncio

from confluent_kafka import Message

from events.producer import AsyncProducer

SOURCE_TOPIC = "dlq.source.topic"
SOURCE_PARTITION = "dlq.source.partition"
SOURCE_OFFSET = "dlq.source.offset"
CONSUMER = "dlq.consumer"
ERROR = "dlq.error"
DLQ_HEADERS = (SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, CONSUMER, ERROR)
# Set by `taskflow dlq purge` (deploy/dlq_purge.py) on the dead letters it moves: the run
# that moved it and its place (`partition:offset`) before the move. Like every `dlq.*`
# header, a replay drops them.
PURGE_RUN = "dlq.purge.run"
PURGE_FROM = "dlq.purge.from"
PURGE_MARKER = "dlq.purge.marker"


def dlq_headers(
    topic: str, partition: int, offset: int, consumer: str, error: str
) -> list[tuple[str, bytes]]:
    """Headers naming where a dead letter came from and why it failed."""
    return [
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (CONSUMER, consumer.encode()),
        (ERROR, error[:1000].encode("utf-8", "replace")),
    ]


def dead_letter(
    producer: AsyncProducer, dlq_topic: str, msg: Message, consumer: str, error: str
) -> asyncio.Future[Message]:
    """Publish `msg` unchanged (key, value, headers) to the DLQ with its origin in headers."""
    original: list[tuple[str, bytes | str]] = []
    received = msg.headers() or []
    pairs = received.items() if isinstance(received, dict) else received
    for key, value in pairs:
        if key not in DLQ_HEADERS and value is not None:
            original.append((key, value))
    headers = original + list(
        dlq_headers(msg.topic() or "", msg.partition() or 0, msg.offset() or 0, consumer, error)
    )
    return producer.produce(dlq_topic, msg.value(), key=msg.key(), headers=headers)
