"""Trace context across the timer: the fire span continues the trace of the scheduling event.

Uses the OpenTelemetry API directly (`opentelemetry.propagate`); swap for
`observability.propagation` once that exists. Without an SDK installed the span is a
no-op, so the scheduling event's `traceparent` is passed on unchanged instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind

TRACEPARENT = "traceparent"
_tracer = trace.get_tracer("pipelines.reminders")
log = logging.getLogger(__name__)


def header_value(headers: Iterable[tuple[str, bytes | str | None]], name: str) -> str | None:
    """The last value of header `name` as text."""
    found: str | None = None
    for key, value in headers:
        if key == name and value is not None:
            found = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return found


def _context(traceparent: str | None) -> trace.SpanContext | None:
    if not traceparent:
        return None
    ctx = propagate.extract({TRACEPARENT: traceparent})
    span_context = trace.get_current_span(ctx).get_span_context()
    return span_context if span_context.is_valid else None


def fire_headers(
    name: str, parents: Sequence[str | None], attributes: dict[str, str]
) -> dict[str, str]:
    """Open and close a PRODUCER span for one delivery; returns the headers that carry it.

    One scheduling context becomes the span's parent; several (a digest) become links.
    """
    contexts = [c for c in (_context(p) for p in parents) if c is not None]
    parent = None
    links: list[Link] = []
    if len(contexts) == 1:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[0]))
    else:
        links = [Link(c) for c in contexts]
    carrier: dict[str, str] = {}
    with _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.PRODUCER, links=links, attributes=attributes
    ):
        propagate.inject(carrier)
        # One line per reminder or digest sent, inside its span: the log carries its trace.
        fields = {key.replace(".", "_"): value for key, value in attributes.items()}
        log.info("%s", name, extra=fields)
    if TRACEPARENT not in carrier and len(contexts) == 1:
        carrier[TRACEPARENT] = parents[0] or ""  # no SDK: keep the scheduling trace going
    return {key: value for key, value in carrier.items() if value}
