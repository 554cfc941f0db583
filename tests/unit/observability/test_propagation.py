from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability.propagation import (
    context_from_traceparent,
    current_traceparent,
    extract_context,
    inject_headers,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _remote(ctx: object) -> trace.SpanContext:
    return trace.get_current_span(ctx).get_span_context()  # type: ignore[arg-type]


def test_inject_then_extract_continues_the_active_span(spans: InMemorySpanExporter) -> None:
    headers: list[tuple[str, bytes]] = [("ce_type", b"com.taskflow.task.created")]
    with trace.get_tracer("t").start_as_current_span("publish") as span:
        inject_headers(headers)
    names = [k for k, _ in headers]
    assert names[0] == "ce_type" and "traceparent" in names
    remote = _remote(extract_context(headers))
    assert remote.is_remote
    assert remote.trace_id == span.get_span_context().trace_id
    assert remote.span_id == span.get_span_context().span_id


def test_inject_replaces_an_existing_traceparent() -> None:
    headers: list[tuple[str, bytes]] = [
        ("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")
    ]
    with trace.get_tracer("t").start_as_current_span("x"):
        inject_headers(headers)
    assert [k for k, _ in headers].count("traceparent") == 1
    assert _remote(extract_context(headers)).trace_id != int("1" * 32, 16)


def test_inject_with_an_explicit_context() -> None:
    headers: list[tuple[str, bytes]] = []
    inject_headers(headers, context_from_traceparent(TRACEPARENT))
    assert dict(headers)["traceparent"] == TRACEPARENT.encode()


def test_inject_without_a_span_adds_nothing() -> None:
    headers: list[tuple[str, bytes]] = [("ce_type", b"x")]
    inject_headers(headers)
    assert headers == [("ce_type", b"x")]


def test_extract_accepts_what_confluent_kafka_hands_over() -> None:
    assert not _remote(extract_context(None)).is_valid
    assert not _remote(extract_context([])).is_valid
    # None values and str values both occur; header names are case-insensitive.
    ctx = extract_context([("other", None), ("TraceParent", TRACEPARENT.encode())])
    assert _remote(ctx).trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert _remote(extract_context([("traceparent", TRACEPARENT)])).span_id == 0xB7AD6B7169203331


def test_garbage_traceparent_gives_a_root_context() -> None:
    assert not _remote(extract_context([("traceparent", b"\xff\xfenot-a-trace")])).is_valid
    assert not _remote(context_from_traceparent("garbage")).is_valid
    assert not _remote(context_from_traceparent(None)).is_valid
    assert not _remote(context_from_traceparent("")).is_valid


def test_traceparent_round_trip_through_an_outbox_row(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("t")
    assert current_traceparent() is None
    with tracer.start_as_current_span("request") as request:
        stored = current_traceparent()
    assert stored is not None
    with tracer.start_as_current_span("relay", context=context_from_traceparent(stored)):
        pass
    relay = next(s for s in spans.get_finished_spans() if s.name == "relay")
    assert relay.parent is not None
    assert relay.parent.span_id == request.get_span_context().span_id
    assert relay.context.trace_id == request.get_span_context().trace_id
