from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, StatusCode

from observability.messaging import (
    carries_unsampled_parent,
    consumer_span,
    producer_span,
    websocket_send_span,
)
from observability.propagation import context_from_traceparent, current_traceparent
from observability.tracing import skip_unsampled_children


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


TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("headers", "unsampled"),
    [
        ([("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-00".encode())], True),
        ([("ce_type", b"x"), ("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-02".encode())], True),
        ([("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-01".encode())], False),
        ([("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-03".encode())], False),
        ([("traceparent", f"00-{'0' * 32}-{SPAN_ID}-00".encode())], False),  # invalid id
        ([("traceparent", f"00-{TRACE_ID}-{'0' * 16}-00".encode())], False),
        ([("traceparent", f"01-{TRACE_ID}-{SPAN_ID}-00-extra".encode())], False),  # other version
        ([("traceparent", b"garbage")], False),
        ([("ce_type", b"com.taskflow.task.created")], False),  # no parent: a root may be sampled
        ([], False),
    ],
)
def test_only_a_valid_unsampled_traceparent_lets_headers_skip_the_producer_span(
    headers: list[tuple[str, bytes]], unsampled: bool
) -> None:
    assert skip_unsampled_children()  # the unit tier runs the shipped sampler
    assert carries_unsampled_parent(headers) is unsampled


def test_passing_unsampled_headers_through_sends_what_the_full_path_would(
    spans: InMemorySpanExporter,
) -> None:
    row = [("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-00".encode()), ("ce_type", b"x")]
    assert carries_unsampled_parent(row)
    injected = list(row)
    with producer_span(
        "taskflow.tasks", headers=injected, context=context_from_traceparent(row[0][1].decode())
    ):
        pass
    assert sorted(injected) == sorted(row)
    assert spans.get_finished_spans() == ()
