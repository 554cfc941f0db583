"""The dataflow and its sink with TestingSource/TestingSink and run_main (no broker, no DB)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from audit_store.ingest import WriteResult
from audit_store.records import AuditRecord, Poison
from audit_store.settings import AuditSettings
from observability.tracing import setup_tracing
from pipelines.audit import (
    GROUP,
    ConsumerLagCollector,
    build_flow,
    expose_consumer_lag,
    to_item,
    to_item_traced,
)
from pipelines.audit.sink import AuditStoreSink, links_of
from tests.unit.audit.factories import TRACE_ID, TRACEPARENT, event_bytes, task_payload

Message = KafkaSourceMessage[bytes | None, bytes | None]


def message(value: bytes | None, offset: int, partition: int = 0) -> Message:
    return KafkaSourceMessage(
        key=b"k",
        value=value,
        topic="taskflow.tasks",
        headers=[("traceparent", TRACEPARENT.encode())],
        offset=offset,
        partition=partition,
        timestamp=(1, 1_767_225_600_000),
    )


class FakeWriter:
    """Records what it is asked to write; fails the test if two writes overlap."""

    def __init__(self) -> None:
        self.chunks: list[list[AuditRecord | Poison]] = []
        self.in_flight = False
        self.closed = False

    async def write(self, items: Sequence[AuditRecord | Poison]) -> WriteResult:
        assert not self.in_flight, "a chunk was written before the previous one committed"
        self.in_flight = True
        await asyncio.sleep(0)  # let anything that could overlap run now
        self.chunks.append(list(items))
        self.in_flight = False
        return WriteResult(inserted=sum(isinstance(i, AuditRecord) for i in items))

    async def close(self) -> None:
        self.closed = True


def test_the_flow_hands_every_message_to_the_sink_in_order() -> None:
    msgs = [message(event_bytes(task_payload()), i) for i in range(4)]
    out: list[Message] = []
    run_main(build_flow(TestingSource(msgs), TestingSink(out)))
    assert out == msgs


def test_the_sink_decodes_and_writes_chunks_in_order_then_closes() -> None:
    values = [event_bytes(task_payload(title=f"t{i}")) for i in range(5)]
    msgs = [message(v, i) for i, v in enumerate(values)]
    msgs.insert(2, message(b"\xff garbage", 99))
    writer = FakeWriter()

    async def open_writer() -> FakeWriter:
        return writer

    source = TestingSource(msgs, batch_size=len(msgs))  # one batch: three chunks of two
    run_main(build_flow(source, AuditStoreSink(open_writer, to_item, chunk=2)))

    assert [len(c) for c in writer.chunks] == [2, 2, 2]
    items = [item for chunk in writer.chunks for item in chunk]
    assert [type(i).__name__ for i in items] == ["AuditRecord"] * 2 + ["Poison"] + [
        "AuditRecord"
    ] * 3
    poison = items[2]
    assert isinstance(poison, Poison)
    assert (poison.origin.topic, poison.origin.offset, poison.value) == (
        "taskflow.tasks",
        99,
        b"\xff garbage",
    )
    records = [i for i in items if isinstance(i, AuditRecord)]
    assert [r.origin.offset for r in records] == [0, 1, 2, 3, 4]
    assert {r.trace_id for r in records} == {TRACE_ID}
    assert records[0].origin.timestamp_ms == 1_767_225_600_000
    assert writer.closed


def test_message_spans_continue_the_producer_trace() -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("audit-flow-unit", exporter=exporter)
    exporter.clear()
    items = [
        to_item_traced(message(event_bytes(task_payload()), 0)),
        to_item_traced(message(None, 1)),
    ]
    assert isinstance(items[0], AuditRecord) and isinstance(items[1], Poison)
    spans = [s for s in exporter.get_finished_spans() if s.name == "process taskflow.tasks"]
    assert len(spans) == 2
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    assert spans[0].parent is not None and spans[0].parent.is_remote
    assert spans[1].attributes is not None and spans[1].attributes["error.type"] == "poison"


def test_batch_spans_link_to_each_producer_up_to_a_limit() -> None:
    items = [to_item(message(event_bytes(task_payload()), i)) for i in range(5)]
    links = links_of(items, limit=3)
    assert len(links) == 3
    assert {format(link.context.trace_id, "032x") for link in links} == {TRACE_ID}


def test_message_spans_are_consumer_children_of_the_producer_span() -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("audit-flow-unit", exporter=exporter)
    exporter.clear()
    to_item_traced(message(event_bytes(task_payload()), 7, partition=2))
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "process taskflow.tasks"]
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == TRACEPARENT.split("-")[2]
    assert span.attributes is not None
    assert span.attributes["messaging.destination.name"] == "taskflow.tasks"
    assert span.attributes["messaging.destination.partition.id"] == "2"
    assert span.attributes["messaging.kafka.offset"] == 7
    assert span.attributes["messaging.consumer.group.name"] == GROUP


def test_per_message_spans_are_the_default() -> None:
    assert AuditSettings().flow_message_spans is True


def test_bytewax_lag_is_exposed_under_the_shared_name() -> None:
    registry = CollectorRegistry()
    bytewax_lag = Gauge(
        "bytewax_kafka_consumer_lag", "lag", ["step_id", "topic", "partition"], registry=registry
    )
    bytewax_lag.labels(step_id="audit.kafka_in", topic="taskflow.tasks", partition="1").set(42)

    registry.register(ConsumerLagCollector(bytewax_lag))
    registry.unregister(bytewax_lag)

    assert registry.get_sample_value("bytewax_kafka_consumer_lag", {}) is None
    labels = {"group": GROUP, "topic": "taskflow.tasks", "partition": "1"}
    assert registry.get_sample_value("taskflow_consumer_lag_messages", labels) == 42
    assert b"# TYPE taskflow_consumer_lag_messages gauge" in generate_latest(registry)


def test_expose_consumer_lag_swaps_the_bytewax_gauge_out() -> None:
    from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE

    registry = CollectorRegistry()
    registry.register(BYTEWAX_CONSUMER_LAG_GAUGE)
    expose_consumer_lag(registry)
    text = generate_latest(registry).decode()
    assert "bytewax_kafka_consumer_lag" not in text
    assert "# TYPE taskflow_consumer_lag_messages gauge" in text
