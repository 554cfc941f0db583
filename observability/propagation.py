"""W3C trace context through Kafka headers, dataflow items and outbox rows.

Kafka headers are the `(str, bytes | None)` list confluent-kafka and Bytewax hand over
(or None when a message has none). The globally configured propagator is used, so
OTEL_PROPAGATORS is honoured (default: tracecontext + baggage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

KafkaHeaders = Sequence[tuple[str, bytes | str | None]]
# What `confluent_kafka.Message.headers()` is typed to return (in practice the list form).
HeadersLike = KafkaHeaders | Mapping[str, bytes | str | None] | None


class _HeaderGetter(Getter[KafkaHeaders]):
    """Read header values case-insensitively; the last value of a repeated key wins."""

    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        found: str | None = None
        for name, value in carrier:
            if value is not None and name.lower() == key:
                found = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return None if found is None else [found]

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [name for name, _ in carrier]


_getter = _HeaderGetter()


def inject_headers(headers: list[tuple[str, bytes]], context: Context | None = None) -> None:
    """Add (or replace) `traceparent`/`tracestate` for `context` (default: the current one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    if not carrier:
        return
    keys = {k.lower() for k in carrier}
    headers[:] = [(k, v) for k, v in headers if k.lower() not in keys]
    headers.extend((k, v.encode()) for k, v in carrier.items())


def extract_context(headers: HeadersLike) -> Context:
    """The remote parent carried by Kafka headers (an empty context if there is none)."""
    if not headers:
        return Context()
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    return propagate.extract(items, context=Context(), getter=_getter)


def current_traceparent(context: Context | None = None) -> str | None:
    """The W3C traceparent of the current (or given) span, for an outbox row or item."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context:
    """Turn a stored traceparent back into a parent context (empty if missing or bad)."""
    if not traceparent:
        return Context()
    return propagate.extract({"traceparent": traceparent}, context=Context())
