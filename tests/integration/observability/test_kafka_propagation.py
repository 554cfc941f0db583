"""Trace context crosses the real broker in headers, and lag is read from the real group."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from observability.messaging import consumer_span, producer_span
from observability.metrics import consumer_lag

pytestmark = pytest.mark.integration


async def test_headers_carry_the_trace_through_the_broker(
    spans: InMemorySpanExporter, kafka_settings: KafkaSettings
) -> None:
    topic = kafka_settings.topics.tasks
    producer = AsyncProducer(kafka_settings.producer())
    try:
        with trace.get_tracer("t").start_as_current_span("POST /api/v1/tasks") as request:
            headers: list[tuple[str, bytes]] = [("ce_type", b"com.taskflow.task.created")]
            with producer_span(topic, headers=headers, key="task-1", event_id="ev-1"):
                delivered = await producer.produce(topic, b"{}", key="task-1", headers=headers)
    finally:
        await producer.close()

    group = f"obs-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(kafka_settings.consumer(group))
    try:
        partition, offset = delivered.partition(), delivered.offset()
        assert partition is not None and offset is not None
        consumer.assign([TopicPartition(topic, partition, offset)])
        msg = None
        for _ in range(100):  # poll with a deadline (100 x 0.2 s), never a fixed sleep
            msg = await asyncio.to_thread(consumer.poll, 0.2)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None
        with consumer_span(
            topic,
            headers=msg.headers(),
            partition=msg.partition(),
            offset=msg.offset(),
            group=group,
        ):
            pass
    finally:
        consumer.close()

    finished = {s.name: s for s in spans.get_finished_spans()}
    send, process = finished[f"send {topic}"], finished[f"process {topic}"]
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.parent.is_remote
    assert process.context.trace_id == request.get_span_context().trace_id


async def test_consumer_lag_from_the_real_group(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topics.notifications
    producer = AsyncProducer(kafka_settings.producer())
    try:
        # Awaiting each delivery makes one batch per message, which Tansu's (buggy)
        # high watermark still reports right; bigger batches read low there.
        for i in range(3):
            delivered = await producer.produce(
                topic, b"{}", key="user-1", headers=[("n", b"%d" % i)]
            )
    finally:
        await producer.close()
    partition = delivered.partition()
    assert partition is not None
    group = f"obs-lag-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(kafka_settings.consumer(group))
    try:
        tps = [TopicPartition(topic, partition)]
        assert await asyncio.to_thread(consumer_lag, consumer, tps) == {(topic, partition): 3}
        await asyncio.to_thread(
            consumer.commit, offsets=[TopicPartition(topic, partition, 1)], asynchronous=False
        )
        assert await asyncio.to_thread(consumer_lag, consumer, tps) == {(topic, partition): 2}
    finally:
        consumer.close()
