from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, StatusCode

from observability.messaging import consumer_span, producer_span, websocket_send_span
from observability.propagation import context_from_traceparent, current_traceparent


def test_producer_then_consumer_is_one_trace(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("t").start_as_current_span("POST /api/v1/tasks/"):
        stored = current_traceparent()
    headers: list[tuple[str, bytes]] = [("ce_type", b"com.taskflow.task.created")]
    # The relay runs later, outside the request: the stored traceparent is the parent.
    with producer_span(
        "taskflow.tasks",
        headers=headers,
        context=context_from_traceparent(stored),
        key="task-1",
        event_id="ev-1",
        event_type="com.taskflow.task.created",
        source="/task-service",
        subject="task-1",
    ):
        pass
    with consumer_span(
        "taskflow.tasks",
        headers=headers,
        partition=2,
        offset=7,
        group="taskflow-notify",
        event_id="ev-1",
        event_type="com.taskflow.task.created",
    ):
        pass
    request, send, process = spans.get_finished_spans()
    assert send.name == "send taskflow.tasks" and send.kind is SpanKind.PRODUCER
    assert process.name == "process taskflow.tasks" and process.kind is SpanKind.CONSUMER
    assert send.parent is not None and send.parent.span_id == request.context.span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert len({request.context.trace_id, send.context.trace_id, process.context.trace_id}) == 1
    assert send.attributes is not None and process.attributes is not None
    assert send.attributes["messaging.system"] == "kafka"
    assert send.attributes["messaging.destination.name"] == "taskflow.tasks"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.kafka.message.key"] == "task-1"
    assert send.attributes["cloudevents.event_id"] == "ev-1"
    assert send.attributes["cloudevents.event_type"] == "com.taskflow.task.created"
    assert send.attributes["cloudevents.event_source"] == "/task-service"
    assert send.attributes["cloudevents.event_subject"] == "task-1"
    assert process.attributes["messaging.destination.partition.id"] == "2"
    assert process.attributes["messaging.kafka.offset"] == 7
    assert process.attributes["messaging.consumer.group.name"] == "taskflow-notify"
    assert dict(headers)["traceparent"].decode().split("-")[2] == format(
        send.context.span_id, "016x"
    )


def test_consumer_without_headers_starts_a_trace_and_can_link(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("t").start_as_current_span("other") as other:
        pass
    with consumer_span("taskflow.reminders", headers=None, links=[Link(other.get_span_context())]):
        pass
    process = spans.get_finished_spans()[-1]
    assert process.parent is None
    assert [link.context.span_id for link in process.links] == [other.get_span_context().span_id]


def test_a_failure_marks_the_span(spans: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError), consumer_span("taskflow.tasks", headers=[]):
        raise RuntimeError("handler failed")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].name == "exception"


def test_websocket_send_is_a_child_of_the_notification_it_forwards(
    spans: InMemorySpanExporter,
) -> None:
    with consumer_span("taskflow.notifications", headers=[]) as process:
        with websocket_send_span(user_id="u1", notification_id="n1", seq=4):
            pass
    send = spans.get_finished_spans()[0]
    assert send.name == "websocket send"
    assert send.parent is not None and send.parent.span_id == process.get_span_context().span_id
    assert send.attributes is not None
    assert send.attributes["taskflow.notification.seq"] == 4
    assert send.attributes["network.protocol.name"] == "websocket"


UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def test_an_unsampled_trace_stays_unsampled_through_every_hop(
    spans: InMemorySpanExporter,
) -> None:
    headers: list[tuple[str, bytes]] = []
    with producer_span(
        "taskflow.tasks", headers=headers, context=context_from_traceparent(UNSAMPLED)
    ):
        inside_send = current_traceparent()
    with consumer_span("taskflow.tasks", headers=headers, event_id="ev-1"):
        # What a consumer passes on (an item's traceparent, a further publish, a frame).
        forwarded = current_traceparent()
        further: list[tuple[str, bytes]] = []
        with producer_span("taskflow.notifications", headers=further), websocket_send_span():
            pass
    assert spans.get_finished_spans() == ()
    # The "not sampled" flag travels on: no hop starts a trace of its own.
    assert dict(headers)["traceparent"].decode() == UNSAMPLED
    assert inside_send == forwarded == UNSAMPLED
    assert dict(further)["traceparent"].decode() == UNSAMPLED
    assert current_traceparent() is None  # the parent was current only inside the blocks
