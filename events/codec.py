"""CloudEvents 1.0 structured JSON codec with a (type, version) payload registry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import ValidationError
from uuid_utils.compat import uuid7

from events.errors import DecodeError, UnknownEventType
from events.payloads import ALL_PAYLOADS, Payload

CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"

P = TypeVar("P", bound=Payload)

_REGISTRY: dict[tuple[str, int], type[Payload]] = {
    (cls.event_type, cls.schema_version): cls for cls in ALL_PAYLOADS
}
_REQUIRED = ("id", "source", "specversion", "type")


def new_event_id() -> str:
    """A fresh, time-ordered event id (UUIDv7)."""
    return str(uuid7())


@dataclass(frozen=True, slots=True)
class Envelope(Generic[P]):
    """A CloudEvent with a typed payload; extensions `userid`, `dataversion`, `traceparent`."""

    data: P
    source: str
    subject: str
    user_id: str
    id: str = field(default_factory=new_event_id)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def type(self) -> str:
        return self.data.event_type

    @property
    def dataversion(self) -> int:
        return self.data.schema_version


def to_dict(envelope: Envelope[Any]) -> dict[str, Any]:
    """The structured-mode CloudEvent as a JSON-ready dict."""
    doc: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "time": envelope.time.astimezone(UTC).isoformat(),
        "subject": envelope.subject,
        "datacontenttype": DATA_CONTENT_TYPE,
        "dataversion": str(envelope.dataversion),
        "userid": envelope.user_id,
        "data": envelope.data.model_dump(mode="json"),
    }
    if envelope.traceparent:
        doc["traceparent"] = envelope.traceparent
    if envelope.tracestate:
        doc["tracestate"] = envelope.tracestate
    return doc


def encode(envelope: Envelope[Any]) -> bytes:
    """Serialise an envelope to structured-mode CloudEvents JSON bytes."""
    return orjson.dumps(to_dict(envelope))


def payload_type(event_type: str, version: int = 1) -> type[Payload]:
    """The registered payload class for (type, version)."""
    try:
        return _REGISTRY[(event_type, version)]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r} version {version}") from None


def decode(raw: bytes | str | None) -> Envelope[Payload]:
    """Parse and validate a CloudEvent; raise `DecodeError` on anything malformed."""
    if raw is None:
        raise DecodeError("empty message")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("a CloudEvent must be a JSON object")
    return from_dict(doc)


def from_dict(doc: dict[str, Any]) -> Envelope[Payload]:
    """Validate a structured CloudEvent dict into a typed envelope."""
    missing = [name for name in _REQUIRED if not isinstance(doc.get(name), str) or not doc[name]]
    if missing:
        raise DecodeError(f"missing or empty CloudEvents attributes: {', '.join(missing)}")
    if doc["specversion"] != SPEC_VERSION:
        raise DecodeError(f"unsupported specversion {doc['specversion']!r}")
    try:
        version = int(doc.get("dataversion", "1"))
    except (TypeError, ValueError):
        raise DecodeError(f"bad dataversion {doc.get('dataversion')!r}") from None
    cls = payload_type(doc["type"], version)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise DecodeError("data must be a JSON object")
    try:
        payload = cls.model_validate(data)
        time = datetime.fromisoformat(doc["time"]) if doc.get("time") else datetime.now(UTC)
        uuid.UUID(doc["id"])
    except (ValidationError, ValueError, TypeError) as exc:
        raise DecodeError(f"invalid {doc['type']} event: {exc}") from None
    if time.tzinfo is None:
        raise DecodeError("time must carry a UTC offset")
    try:
        time.astimezone(UTC)  # consumers store and compare it in UTC
    except OverflowError:
        raise DecodeError(f"time {doc['time']!r} is out of range in UTC") from None
    return Envelope(
        data=payload,
        source=doc["source"],
        subject=str(doc.get("subject", "")),
        user_id=str(doc.get("userid", "")),
        id=doc["id"],
        time=time,
        traceparent=doc.get("traceparent"),
        tracestate=doc.get("tracestate"),
    )
