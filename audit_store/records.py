"""From a raw Kafka message to what the store keeps: an `AuditRecord` or a `Poison`.

Plain functions so the dataflow stays thin; the events codec does the validation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from audit_store.chain import canonical_data
from audit_store.personal import split
from events.codec import from_dict
from events.errors import DecodeError
from events.payloads import (
    NotificationCreated,
    NotificationFailed,
    Payload,
    ReminderDigest,
    TaskReminder,
    TaskSnapshotted,
    TaskState,
)

Headers = Sequence[tuple[str, bytes | str | None]]
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from; (topic, partition) names its chain."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    @property
    def chain_id(self) -> str:
        return chain_id(self.topic, self.partition)


def chain_id(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A decoded event ready to be chained and stored."""

    origin: Origin
    event_id: str
    type: str
    source: str
    subject: str
    user_id: str
    task_id: str | None
    occurred_at: datetime
    # The canonical JSON of the event's data without its personal fields (stored in clear).
    data_json: str
    trace_id: str | None
    snapshot: bool
    # Not hashed (derived or transport data): the words full-text search indexes, and
    # the W3C traceparent the write span links to.
    search_text: str = ""
    traceparent: str | None = None
    # The personal fields (audit_store.personal) as canonical JSON, None if there are
    # none: never stored as such, the writer seals them with the user's data key.
    personal_json: str | None = None


@dataclass(frozen=True, slots=True)
class Poison:
    """A message that cannot become an entry; it goes to the DLQ with its origin."""

    origin: Origin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    error: str


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a W3C `traceparent`, or None if absent or malformed."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name and value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


def task_id_of(payload: Payload) -> str | None:
    """The task an event is about, so task-scoped search and legal holds work."""
    if isinstance(payload, TaskState):
        return str(payload.id)
    if isinstance(payload, TaskReminder):
        return str(payload.task_id)
    if isinstance(payload, NotificationCreated) and payload.notification.task_id:
        return str(payload.notification.task_id)
    return None


def search_text(event_type: str, payload: Payload) -> str:
    """The human words of an event, for `q` full-text search."""
    words = [event_type]
    if isinstance(payload, TaskState):
        words += [payload.title, payload.description or "", *payload.tags]
    elif isinstance(payload, TaskReminder):
        words += [payload.title, payload.kind]
    elif isinstance(payload, ReminderDigest):
        words += [item.title for item in payload.items]
    elif isinstance(payload, NotificationCreated):
        note = payload.notification
        words += [note.kind, note.title, note.body]
    elif isinstance(payload, NotificationFailed):
        words += [payload.channel, payload.error]
    return " ".join(w for w in words if w)


def to_record(
    origin: Origin, key: bytes | None, value: bytes | None, headers: Headers
) -> AuditRecord | Poison:
    """Decode one message; anything the store cannot keep becomes a `Poison`."""
    try:
        if value is not None and b"\\u0000" in value:
            # PostgreSQL text and jsonb refuse NUL: catch it here, not as a failed batch.
            raise DecodeError("NUL character (\\u0000) is not storable")
        doc = _parse(value)
        envelope = from_dict(doc)  # the events codec's validation, on JSON parsed once
        clear, personal = split(envelope.type, doc["data"])
    except DecodeError as exc:
        return Poison(origin, key, value, _bytes_headers(headers), f"{type(exc).__name__}: {exc}")
    traceparent = header(headers, "traceparent") or envelope.traceparent
    return AuditRecord(
        origin=origin,
        event_id=envelope.id,
        type=envelope.type,
        source=envelope.source,
        subject=envelope.subject,
        user_id=envelope.user_id,
        task_id=task_id_of(envelope.data),
        occurred_at=envelope.time.astimezone(UTC),
        data_json=canonical_data(clear),
        trace_id=trace_id_of(traceparent),
        snapshot=isinstance(envelope.data, TaskSnapshotted),
        search_text=search_text(envelope.type, envelope.data),
        traceparent=traceparent,
        personal_json=canonical_data(personal) if personal is not None else None,
    )


def _parse(value: bytes | None) -> dict[str, Any]:
    """JSON-parse like `events.codec.decode`, keeping the dict (its `data` is stored)."""
    if value is None:
        raise DecodeError("empty message")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("a CloudEvent must be a JSON object")
    return doc


def _bytes_headers(headers: Headers) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in headers if v is not None)
