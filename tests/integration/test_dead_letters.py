"""The DLQ helper keeps the message and names where it came from and why it failed."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from events import dlq
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from tests.kafka_helpers import TopicReader, headers_of


async def test_dead_letter_carries_origin_headers(kafka_settings: KafkaSettings) -> None:
    topics = kafka_settings.topics
    producer = AsyncProducer(kafka_settings.producer())
    consumer = Consumer(kafka_settings.consumer("dlq-test"))
    reader = TopicReader(kafka_settings, topics.dlq)
    try:
        sent = await producer.produce(
            topics.tasks, b"not a cloudevent", "task-1", [("traceparent", b"00-x")]
        )
        consumer.assign([TopicPartition(topics.tasks, sent.partition(), 0)])
        (bad,) = consumer.consume(1, 10)
        await dlq.dead_letter(producer, topics.dlq, bad, "audit-flow", "DecodeError: not JSON")

        (dead,) = await reader.wait_count(1)
        assert dead.value() == b"not a cloudevent" and dead.key() == b"task-1"
        headers = headers_of(dead)
        assert headers[dlq.SOURCE_TOPIC] == topics.tasks
        assert headers[dlq.SOURCE_PARTITION] == str(sent.partition())
        assert headers[dlq.SOURCE_OFFSET] == str(sent.offset())
        assert headers[dlq.CONSUMER] == "audit-flow"
        assert headers[dlq.ERROR] == "DecodeError: not JSON"
        assert headers["traceparent"] == "00-x"
    finally:
        consumer.close()
        reader.close()
        await producer.close()
