"""Producer and consumer spans for Kafka, named and attributed per the OpenTelemetry
messaging and CloudEvents semantic conventions.

`producer_span` injects its own context into the outgoing headers, so the consumer's
`consumer_span` (parent taken from those headers) continues the same trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeAlias

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import Link, Span, SpanKind

from observability.propagation import HeadersLike, extract_context, inject_headers
from observability.tracing import skip_unsampled_children

# Our own alias, not `opentelemetry.util.types.AttributeValue`: opentelemetry-api 1.45.0
# declares it by chained assignment, which mypy does not take as a type ("not valid as a
# type"); 1.45.1 fixed it. These are the spec's attribute types, valid under every version.
AttributeValue: TypeAlias = (
    str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]
)

_TRACER_NAME = "taskflow.messaging"
# A proxy until the process sets its provider, then bound to it once: looking the tracer
# up per message cost ~6% of the notification worker's CPU.
_default_tracer = trace.get_tracer(_TRACER_NAME)


# A version-00 W3C traceparent with valid (non-zero) ids; the group is its flags.
_TRACEPARENT = re.compile(rb"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-([0-9a-f]{2})")


def _unsampled_parent(context: Context | None) -> Span | None:
    """The parent span when it is valid but not sampled and the shipped sampler would drop
    any child of it (`skip_unsampled_children`); None when a span must be started."""
    if not skip_unsampled_children():
        return None
    parent = trace.get_current_span(context)
    ctx = parent.get_span_context()
    return parent if ctx.is_valid and not ctx.trace_flags.sampled else None


def carries_unsampled_parent(headers: Sequence[tuple[str, bytes]]) -> bool:
    """Whether these Kafka headers carry a W3C `traceparent` whose 'sampled' flag is off,
    under the shipped sampler (`skip_unsampled_children`): a producer span of it would be
    dropped and injecting would write the same headers again, so they can go out as they
    are. Read with one regular expression, no context built; False when there is no such
    header or it is not a valid version-00 one (the full path decides then)."""
    if not skip_unsampled_children():
        return False
    for name, value in headers:
        if name == "traceparent":
            match = _TRACEPARENT.fullmatch(value)
            return match is not None and not int(match[1], 16) & 1
    return False


@contextmanager
def _as_current(context: Context | None, span: Span) -> Iterator[Span]:
    """Keep an unsampled parent current instead of starting a span that would be dropped:
    whatever the block starts or injects carries its 'not sampled' flag on."""
    if context is None:
        yield span
        return
    token = attach(context)
    try:
        yield span
    finally:
        detach(token)


def event_attributes(
    *,
    event_id: str | None = None,
    event_type: str | None = None,
    source: str | None = None,
    subject: str | None = None,
    spec_version: str | None = "1.0",
) -> dict[str, AttributeValue]:
    """CloudEvents span attributes (`cloudevents.event_*`) plus `messaging.message.id`."""
    attrs: dict[str, AttributeValue] = {}
    if event_id is not None:
        attrs["cloudevents.event_id"] = event_id
        attrs["messaging.message.id"] = event_id
    if event_type is not None:
        attrs["cloudevents.event_type"] = event_type
    if source is not None:
        attrs["cloudevents.event_source"] = source
    if subject is not None:
        attrs["cloudevents.event_subject"] = subject
    if spec_version is not None and event_id is not None:
        attrs["cloudevents.event_spec_version"] = spec_version
    return attrs


def _kafka_attributes(
    operation: str, op_type: str, topic: str, key: str | bytes | None
) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.name": operation,
        "messaging.operation.type": op_type,
        "messaging.destination.name": topic,
    }
    if key is not None:
        attrs["messaging.kafka.message.key"] = (
            key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        )
    return attrs


@contextmanager
def producer_span(
    topic: str,
    *,
    headers: list[tuple[str, bytes]] | None = None,
    context: Context | None = None,
    key: str | bytes | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
    source: str | None = None,
    subject: str | None = None,
    tracer: trace.Tracer | None = None,
) -> Iterator[Span]:
    """A PRODUCER span `send <topic>`; its context is written into `headers`.

    `context` is the parent: pass `context_from_traceparent(row.traceparent)` in an outbox
    relay so the publish continues the trace of the request that wrote the row.
    """
    unsampled = _unsampled_parent(context)
    if unsampled is not None:
        if headers is not None:
            inject_headers(headers, context)
        with _as_current(context, unsampled):
            yield unsampled
        return
    attrs = _kafka_attributes("send", "send", topic, key)
    attrs.update(
        event_attributes(event_id=event_id, event_type=event_type, source=source, subject=subject)
    )
    tr = tracer or _default_tracer
    with tr.start_as_current_span(
        f"send {topic}", context=context, kind=SpanKind.PRODUCER, attributes=attrs
    ) as span:
        if headers is not None:
            inject_headers(headers)
        yield span


@contextmanager
def consumer_span(
    topic: str,
    *,
    headers: HeadersLike = None,
    context: Context | None = None,
    partition: int | None = None,
    offset: int | None = None,
    group: str | None = None,
    key: str | bytes | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
    source: str | None = None,
    subject: str | None = None,
    links: Sequence[Link] | None = None,
    tracer: trace.Tracer | None = None,
) -> Iterator[Span]:
    """A CONSUMER span `process <topic>` whose parent comes from `headers` (or `context`).

    Use `links` instead of a parent when one span handles many events (a digest).
    """
    parent = context if context is not None else extract_context(headers)
    unsampled = _unsampled_parent(parent)
    if unsampled is not None:
        with _as_current(parent, unsampled):
            yield unsampled
        return
    attrs = _kafka_attributes("process", "process", topic, key)
    if partition is not None:
        attrs["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attrs["messaging.kafka.offset"] = offset
    if group is not None:
        attrs["messaging.consumer.group.name"] = group
    attrs.update(
        event_attributes(event_id=event_id, event_type=event_type, source=source, subject=subject)
    )
    tr = tracer or _default_tracer
    with tr.start_as_current_span(
        f"process {topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attrs,
        links=links,
    ) as span:
        yield span


@contextmanager
def websocket_send_span(
    *,
    user_id: str | None = None,
    notification_id: str | None = None,
    seq: int | None = None,
    event_id: str | None = None,
    tracer: trace.Tracer | None = None,
) -> Iterator[Span]:
    """The hub's send of one notification frame: span `websocket send` (kind PRODUCER).

    Open it inside the `consumer_span` of the notification it forwards, so the frame
    belongs to the trace of the event that caused the notification.
    """
    unsampled = _unsampled_parent(None)
    if unsampled is not None:
        yield unsampled
        return
    attrs: dict[str, AttributeValue] = {"network.protocol.name": "websocket"}
    if user_id is not None:
        attrs["enduser.id"] = user_id
    if notification_id is not None:
        attrs["taskflow.notification.id"] = notification_id
    if seq is not None:
        attrs["taskflow.notification.seq"] = seq
    if event_id is not None:
        attrs["cloudevents.event_id"] = event_id
    tr = tracer or _default_tracer
    with tr.start_as_current_span(
        "websocket send", kind=SpanKind.PRODUCER, attributes=attrs
    ) as span:
        yield span
