"""OTLP/HTTP span export whose request body is written as protobuf bytes directly.

The official encoder builds a protobuf object per span, attribute and value and then
serialises the tree, hashing the resource as JSON for every span: ~0.2 ms of the exporter
thread's CPU per sampled create, under the GIL the requests need (docs/performance.md).
`encode_spans` writes the same `ExportTraceServiceRequest` bytes (the unit tests compare
them with the official encoder's) for the few message types a trace export uses, and
encodes a resource or scope once for all its spans.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from struct import Struct

from opentelemetry.exporter.otlp.proto.http._common import (
    RequestPayloadTooLargeError,
    _is_request_too_large,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import Link, SpanContext

log = logging.getLogger(__name__)

_FIXED64 = Struct("<Q").pack
_DOUBLE = Struct("<d").pack
_FIXED32 = Struct("<I").pack
_SMALL = [bytes((n,)) for n in range(128)]
_INT64 = range(-(2**63), 2**63)

# Span flags (trace.proto SpanFlags): the parent's is_remote is known, and whether it is.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_FLAGS = {False: b"\x85\x01" + _FIXED32(_HAS_IS_REMOTE), True: b"\x85\x01" + _FIXED32(0x300)}
_LINK_FLAGS = {False: b"\x35" + _FIXED32(_HAS_IS_REMOTE), True: b"\x35" + _FIXED32(0x300)}
_EMPTY_STATUS = b"\x7a\x00"


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 0x80 else _varint(n)) + payload


def _any_value(value: object) -> bytes:
    """The body of an `AnyValue` (the official encoder's `_encode_value`, same order)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        if value not in _INT64:
            raise ValueError(f"{value} does not fit an int64")
        return b"\x18" + _varint(value if value >= 0 else value + 2**64)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        array = b"".join([_field(b"\x0a", _any_value(v)) for v in value])
        return _field(b"\x2a", array)
    if isinstance(value, Mapping):
        kvlist = b"".join([_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()])
        return _field(b"\x32", kvlist)
    raise TypeError(f"Invalid type {type(value)} of value {value}")


_keys: dict[str, bytes] = {}


def _key_value(key: str, value: object) -> bytes:
    """The body of a `KeyValue`."""
    prefix = _keys.get(key)
    if prefix is None:
        prefix = _field(b"\x0a", key.encode()) if key else b""
        if len(_keys) < 4096:  # keys come from code, so few; the bound is for safety
            _keys[key] = prefix
    return prefix + _field(b"\x12", _any_value(value))


# Encoded attribute fields by (field tag, key, value), for string and int values only (a
# str never equals an int; bools and floats, which can equal an int, are not kept): most
# attributes repeat from span to span (the messaging system, the route, the server
# address). Emptied when full.
_fields: dict[tuple[bytes, str, str | int], bytes] = {}
_CACHED = 8192


def _attribute(tag: bytes, key: str, value: object) -> bytes:
    """One attribute as a `tag` field holding a `KeyValue`."""
    if type(value) is not str and type(value) is not int:
        return _field(tag, _key_value(key, value))
    cache_key = (tag, key, value)
    field = _fields.get(cache_key)
    if field is None:
        if len(_fields) >= _CACHED:
            _fields.clear()
        field = _fields[cache_key] = _field(tag, _key_value(key, value))
    return field


def _attributes(tag: bytes, attributes: Mapping[str, object] | None) -> list[bytes]:
    """One `tag` field per attribute; one that cannot be encoded is logged and left out,
    as the official encoder does."""
    if not attributes:
        return []
    fields = []
    for key, value in attributes.items():
        try:
            fields.append(_attribute(tag, key, value))
        except (TypeError, ValueError) as error:
            log.exception("Failed to encode key %s: %s", key, error)
    return fields


def _events(events: Sequence[Event]) -> list[bytes]:
    fields = []
    for event in events:
        parts = []
        if event.timestamp:
            parts.append(b"\x09" + _FIXED64(event.timestamp))
        if event.name:
            parts.append(_field(b"\x12", event.name.encode()))
        parts += _attributes(b"\x1a", event.attributes)
        if event.dropped_attributes:
            parts.append(b"\x20" + _varint(event.dropped_attributes))
        fields.append(_field(b"\x5a", b"".join(parts)))
    return fields


def _links(links: Sequence[Link]) -> list[bytes]:
    fields = []
    for link in links:
        context = link.context
        parts = [
            b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + context.span_id.to_bytes(8, "big"),
            *_attributes(b"\x22", link.attributes),
        ]
        if link.dropped_attributes:
            parts.append(b"\x28" + _varint(link.dropped_attributes))
        parts.append(_LINK_FLAGS[bool(context.is_remote)])
        fields.append(_field(b"\x6a", b"".join(parts)))
    return fields


def _span(span: ReadableSpan) -> bytes:
    """The body of one `Span` (fields in number order, defaults left out)."""
    context: SpanContext = span.context
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        state = ",".join([f"{key}={value}" for key, value in context.trace_state.items()])
        parts.append(_field(b"\x1a", state.encode()))
    parent = span.parent
    if parent:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_field(b"\x2a", span.name.encode()))
    parts.append(_SMALL[0x30] + _SMALL[span.kind.value + 1])
    if span.start_time:
        parts.append(b"\x39" + _FIXED64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _FIXED64(span.end_time))
    parts += _attributes(b"\x4a", span.attributes)
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    if span.events:
        parts += _events(span.events)
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    if span.links:
        parts += _links(span.links)
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    code, message = status.status_code.value, status.description
    if code or message:
        body = (_field(b"\x12", message.encode()) if message else b"") + (
            b"\x18" + _SMALL[code] if code else b""
        )
        parts.append(_field(b"\x7a", body))
    else:
        parts.append(_EMPTY_STATUS)
    parts.append(_FLAGS[bool(parent is not None and parent.is_remote)])
    return b"".join(parts)


def _resource(resource: Resource) -> bytes:
    return _field(b"\x0a", b"".join(_attributes(b"\x0a", resource.attributes)))


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b"\x0a\x00"
    parts = [_field(b"\x0a", scope.name.encode())] if scope.name else []
    if scope.version:
        parts.append(_field(b"\x12", scope.version.encode()))
    parts += _attributes(b"\x1a", scope.attributes)
    return _field(b"\x0a", b"".join(parts))


def _grouped(
    spans: Sequence[ReadableSpan],
) -> list[tuple[Resource, dict[InstrumentationScope | None, list[bytes]]]]:
    """Spans by resource, then scope, in first-seen order, as the official encoder groups
    them. Resources are compared by identity first: `Resource.__hash__` dumps the
    attributes as JSON, once per span in the official encoder."""
    by_id: dict[int, tuple[Resource, dict[InstrumentationScope | None, list[bytes]]]] = {}
    for span in spans:
        resource = span.resource
        group = by_id.get(id(resource))
        if group is None:
            group = by_id[id(resource)] = (resource, {})
        group[1].setdefault(span.instrumentation_scope or None, []).append(_span(span))
    merged: list[tuple[Resource, dict[InstrumentationScope | None, list[bytes]]]] = []
    for resource, scopes in by_id.values():
        same = next((g for g in merged if g[0] == resource), None)
        if same is None:
            merged.append((resource, scopes))
            continue
        for scope, encoded in scopes.items():
            same[1].setdefault(scope, []).extend(encoded)
    return merged


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialised `ExportTraceServiceRequest` for `spans`, byte for byte what
    `encode_spans(spans).SerializeToString()` of opentelemetry-exporter-otlp-proto-common
    gives."""
    out = []
    for resource, scopes in _grouped(spans):
        parts = [_resource(resource)]
        for scope, encoded in scopes.items():
            body = [_scope(scope), *[_field(b"\x12", s) for s in encoded]]
            if scope is not None and scope.schema_url:
                body.append(_field(b"\x1a", scope.schema_url.encode()))
            parts.append(_field(b"\x12", b"".join(body)))
        if resource.schema_url:
            parts.append(_field(b"\x1a", resource.schema_url.encode()))
        out.append(_field(b"\x0a", b"".join(parts)))
    return b"".join(out)


class HttpSpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter (same settings, transport, retries and self-metrics) with
    the request body from `encode_spans` above."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            log.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                body = encode_spans(spans)
            except Exception as error:  # the official exporter's contract: log, fail
                log.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if _is_request_too_large(body, self._max_request_size):
                log.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size"
                    " %d bytes.",
                    len(body),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(body)} bytes exceeds"
                    f" max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            sent = self._client.export(body)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: sent.status_code}
                    if sent.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
