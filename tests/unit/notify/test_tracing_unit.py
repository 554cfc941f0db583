"""Trace continuity: consumer span per message (parent from its headers), the
notification.created producer span under it, and the hub's `websocket send` span."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Message
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from events.codec import Envelope, encode
from events.kafka import KafkaSettings
from events.payloads import NotificationDelivered, TaskCreated
from events.topics import Topics
from notify_ws.hub.feed import _traced
from notify_ws.hub.hub import Connection, Hub, Note
from notify_ws.hub.session import Session
from notify_ws.metrics import Metrics
from notify_ws.settings import NotifySettings
from notify_ws.worker.consumer import Worker
from notify_ws.worker.outbox import Publisher
from notify_ws.worker.processor import Item, Result
from observability.propagation import extract_context, inject_headers
from observability.tracing import setup_tracing

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TASK = {"id": uuid.UUID(int=1), "user_id": "u", "title": "Milk", "created_at": T0,
        "updated_at": T0, "version": 1}  # fmt: skip


@pytest.fixture(scope="module")
def _exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("taskflow-unit-test", exporter=exporter)
    return exporter


@pytest.fixture
def spans(_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def _parent_headers() -> tuple[list[tuple[str, bytes]], ReadableSpan]:
    """Headers as the task service's producer span writes them."""
    headers: list[tuple[str, bytes]] = [("ce_type", b"task.created")]
    with trace.get_tracer("test").start_as_current_span(
        "send taskflow.tasks", kind=SpanKind.PRODUCER
    ) as span:
        inject_headers(headers)
    assert isinstance(span, ReadableSpan)
    return headers, span


class FixedClock:
    def now(self) -> datetime:
        return T0


@dataclass
class FakeProcessor:
    items: list[Item] = field(default_factory=list)

    async def process(self, items: list[Item]) -> Result:
        self.items += items
        return Result([], [], len(items))


@dataclass
class FakePublisher:
    batches: int = 0

    async def created(self, notes: list[Any]) -> None:
        self.batches += 1

    async def flush_marks(self) -> None:
        return None


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[Any] = []

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        self.commits.append(offsets)


async def test_one_consumer_span_per_message_parented_by_its_producer(
    spans: InMemorySpanExporter,
) -> None:
    (h1, p1), (h2, p2) = _parent_headers(), _parent_headers()
    spans.clear()
    e1, e2 = (Envelope(data=TaskCreated(**TASK), source="/t", subject="s", user_id="u")
              for _ in range(2))  # fmt: skip
    msgs = [
        Message(topic="taskflow.tasks", partition=0, offset=7, key=b"k", value=encode(e1),
                headers=h1),
        Message(topic="taskflow.tasks", partition=0, offset=8, key=b"k", value=encode(e2),
                headers=h2),
    ]  # fmt: skip
    processor, consumer, metrics = FakeProcessor(), FakeConsumer(), Metrics()
    worker = Worker(KafkaSettings(), NotifySettings(), processor, FakePublisher(),  # type: ignore[arg-type]
                    None, metrics, lambda: None)  # type: ignore[arg-type]  # fmt: skip
    await worker._handle(consumer, msgs, asyncio.Event())

    done = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert len(done) == 2 and consumer.commits
    for span, parent, msg, env in zip(done[::-1], (p1, p2), msgs, (e1, e2), strict=True):
        assert span.name == "process taskflow.tasks"
        assert span.parent is not None and span.parent.span_id == parent.context.span_id
        attrs = span.attributes or {}
        assert attrs["messaging.kafka.offset"] == msg.offset()
        assert attrs["messaging.consumer.group.name"] == NotifySettings().worker_group
        assert attrs["cloudevents.event_id"] == env.id
    # Each item carries its own consumer span's traceparent for notification.created.
    by_offset = {s.attributes["messaging.kafka.offset"]: s for s in done if s.attributes}
    for item in processor.items:
        expected = by_offset[item.ref.offset()].context.span_id
        assert item.traceparent is not None and item.traceparent.split("-")[2] == f"{expected:016x}"
    consumed = metrics.registry.get_sample_value(
        "taskflow_events_consumed_total", {"topic": "taskflow.tasks", "type": "task.created"}
    )
    assert consumed == 2


class FakeProducer:
    def __init__(self) -> None:
        self.headers: list[tuple[str, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[Any]:
        self.headers = list(headers)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(Message(topic=topic, value=value))
        return future


async def test_published_notification_carries_a_producer_span_under_the_event(
    spans: InMemorySpanExporter,
) -> None:
    with trace.get_tracer("test").start_as_current_span("process", kind=SpanKind.CONSUMER) as c:
        traceparent = (
            f"00-{c.get_span_context().trace_id:032x}-{c.get_span_context().span_id:016x}-01"
        )
    producer, metrics = FakeProducer(), Metrics()
    publisher = Publisher(producer, Topics(), "/n", None, FixedClock(), metrics)  # type: ignore[arg-type]
    payload = NotificationDelivered(notification_id=uuid.UUID(int=2), user_id="u",
                                    channel="email", delivered_at=T0)  # fmt: skip
    results = [await publisher._send(payload, "u", "s", traceparent)]
    publisher._count([payload], results)

    (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert span.name == f"send {Topics().notifications}"
    assert span.parent is not None and span.parent.span_id == c.get_span_context().span_id
    hub_parent = trace.get_current_span(extract_context(producer.headers)).get_span_context()
    assert hub_parent.span_id == span.context.span_id  # the hub continues from this span
    produced = metrics.registry.get_sample_value(
        "taskflow_events_produced_total",
        {"topic": Topics().notifications, "type": "notification.delivered"},
    )
    assert produced == 1


async def test_websocket_send_span_is_a_child_of_the_message_context(
    spans: InMemorySpanExporter,
) -> None:
    headers, parent = _parent_headers()
    spans.clear()
    metrics = Metrics()
    session = Session(pool=None, hub=Hub(metrics), metrics=metrics, clock=None)  # type: ignore[arg-type]
    sent: list[str] = []

    async def send(frame: str) -> None:
        sent.append(frame)

    note = Note("{}", extract_context(headers), "n-1", "e-1")
    await session._send_note(Connection("u", 4), send, 5, note)
    await session._send_note(Connection("u", 4), send, 6, Note("{}"))  # no context: no span

    (span,) = spans.get_finished_spans()
    assert span.name == "websocket send" and span.kind is SpanKind.PRODUCER
    assert span.parent is not None and span.parent.span_id == parent.context.span_id
    assert (span.attributes or {})["taskflow.notification.seq"] == 5
    assert sent == ["{}", "{}"]
    assert trace.get_current_span() is trace.INVALID_SPAN  # context detached again
    assert (
        metrics.registry.get_sample_value("taskflow_websocket_frames_total", {"direction": "sent"})
        == 2
    )


def test_feed_carries_a_context_only_for_sampled_parents() -> None:
    tid, sid = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"

    def msg(flags: str | None) -> Message:
        headers = [("traceparent", f"00-{tid}-{sid}-{flags}".encode())] if flags else None
        return Message(topic="n", value=b"{}", headers=headers)

    context = _traced(msg("01").headers())
    assert context is not None
    assert trace.get_current_span(context).get_span_context().span_id == int(sid, 16)
    assert _traced(msg("00").headers()) is None  # a parent-based sampler would not record it
    assert _traced(msg(None).headers()) is None


async def test_fast_path_frame_span_is_a_child_of_the_workers_event_span(
    spans: InMemorySpanExporter,
) -> None:
    """The fast path keeps the trace whole: the frame's `websocket send` span continues the
    worker's span of the event that made the notification (its stored traceparent)."""
    from notify_ws.db.notifications import Notification
    from notify_ws.hub.local import hand_to_hub
    from observability.propagation import current_traceparent

    with trace.get_tracer("test").start_as_current_span("process taskflow.tasks") as worker:
        traceparent = current_traceparent()
    spans.clear()
    metrics = Metrics()
    hub = Hub(metrics)
    session = Session(pool=None, hub=hub, metrics=metrics, clock=None)  # type: ignore[arg-type]
    conn, sent = Connection("u", 4), list[str]()

    async def send(frame: str) -> None:
        sent.append(frame)

    session.attach(conn, send)
    hub.register(conn)
    note = Notification(
        id=uuid.uuid4(), user_id="u", seq=1, kind="task.created", title="t", body="",
        task_id=None, event_id="e", created_at=T0, traceparent=traceparent,
    )  # fmt: skip
    hand_to_hub(hub, metrics)([note])
    async with asyncio.timeout(5):
        while conn.due or conn.sender is not None:  # a traced frame goes to a sender task
            await (conn.sender or asyncio.sleep(0))

    (span,) = spans.get_finished_spans()
    assert span.name == "websocket send"
    assert span.parent is not None and span.parent.span_id == worker.get_span_context().span_id
    assert span.context.trace_id == worker.get_span_context().trace_id
    assert len(sent) == 2  # the frame and its unread_count
