"""The CloudEvents codec: round trips for every payload type, and typed rejections."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from events.codec import Envelope, decode, encode, payload_type
from events.errors import DecodeError, UnknownEventType
from events.payloads import (
    ALL_PAYLOADS,
    DigestItem,
    NotificationBody,
    NotificationCreated,
    NotificationDelivered,
    NotificationFailed,
    Payload,
    ReminderDigest,
    ReminderSpec,
    TaskReminder,
    TaskState,
    TaskUpdated,
    UserErased,
    UserErasureApplied,
)

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
TASK_ID = uuid.UUID("01939a4e-0000-7000-8000-000000000001")


def task_fields() -> dict[str, Any]:
    return {
        "id": TASK_ID,
        "user_id": "alice",
        "title": "Pay rent",
        "due_at": T0 + timedelta(days=1),
        "timezone": "Europe/Berlin",
        "priority": "high",
        "tags": ("home",),
        "reminders": (ReminderSpec(before=timedelta(minutes=15)), ReminderSpec(at=T0)),
        "recurrence": "FREQ=MONTHLY",
        "created_at": T0,
        "updated_at": T0,
        "version": 3,
    }


def sample(cls: type[Payload]) -> Payload:
    if issubclass(cls, TaskUpdated):
        return cls(**task_fields(), changed=("title",))
    if issubclass(cls, TaskState):
        return cls(**task_fields())
    if cls is TaskReminder:
        return cls(
            reminder_id="r1",
            task_id=TASK_ID,
            user_id="alice",
            title="x",
            remind_at=T0,
            task_version=3,
            fired_at=T0,
        )
    if cls is ReminderDigest:
        item = DigestItem(reminder_id="r1", task_id=TASK_ID, title="x", remind_at=T0)
        return cls(digest_id="d1", user_id="alice", window_start=T0, window_end=T0, items=(item,))
    if cls is NotificationCreated:
        body = NotificationBody(
            id=uuid.uuid4(),
            seq=1,
            kind="task.created",
            title="t",
            body="b",
            task_id=TASK_ID,
            event_id="e1",
            created_at=T0,
        )
        return cls(user_id="alice", notification=body)
    if cls is NotificationDelivered:
        return cls(notification_id=uuid.uuid4(), user_id="alice", channel="email", delivered_at=T0)
    if cls is NotificationFailed:
        return cls(
            notification_id=uuid.uuid4(),
            user_id="alice",
            channel="webhook",
            error="500",
            attempts=3,
            failed_at=T0,
        )
    if cls is UserErased:
        return cls(user_id="alice", erasure_id=TASK_ID, requested_at=T0, requested_by="ops")
    if cls is UserErasureApplied:
        return cls(
            user_id="alice",
            erasure_id=TASK_ID,
            service="audit",
            outcome="deferred_legal_hold",
            applied_at=T0,
        )
    raise AssertionError(f"no sample for {cls}")


@pytest.mark.parametrize("cls", ALL_PAYLOADS, ids=lambda cls: cls.event_type)
def test_round_trip(cls: type[Payload]) -> None:
    payload = sample(cls)
    envelope = Envelope(
        data=payload,
        source="/taskflow/test",
        subject=str(TASK_ID),
        user_id="alice",
        time=T0,
        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    )
    decoded = decode(encode(envelope))
    assert decoded == envelope
    assert type(decoded.data) is cls
    assert payload_type(cls.event_type) is cls


def test_structured_mode_attributes() -> None:
    envelope = Envelope(data=sample(TaskUpdated), source="/s", subject="x", user_id="alice")
    doc = orjson.loads(encode(envelope))
    assert doc["specversion"] == "1.0" and doc["type"] == "task.updated"
    assert doc["datacontenttype"] == "application/json" and doc["dataversion"] == "1"
    assert doc["userid"] == "alice" and "traceparent" not in doc
    assert doc["data"]["reminders"] == [{"before": "PT15M"}, {"at": "2026-11-26T09:00:00Z"}]
    assert uuid.UUID(doc["id"]).version == 7


def test_unknown_fields_in_data_are_ignored() -> None:
    doc = orjson.loads(
        encode(Envelope(data=sample(TaskUpdated), source="/s", subject="x", user_id="a"))
    )
    doc["data"]["added_in_v1_1"] = True
    assert decode(orjson.dumps(doc)).data == sample(TaskUpdated)


def valid_doc() -> dict[str, Any]:
    envelope = Envelope(data=sample(TaskUpdated), source="/s", subject="x", user_id="a")
    doc: dict[str, Any] = orjson.loads(encode(envelope))
    return doc


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: d.pop("id"), DecodeError),
        (lambda d: d.update(id="not-a-uuid"), DecodeError),
        (lambda d: d.update(specversion="0.3"), DecodeError),
        (lambda d: d.update(type="task.exploded"), UnknownEventType),
        (lambda d: d.update(dataversion="2"), UnknownEventType),
        (lambda d: d.update(dataversion="two"), DecodeError),
        (lambda d: d.update(data="text"), DecodeError),
        (lambda d: d["data"].pop("version"), DecodeError),
        (lambda d: d["data"].update(due_at="2026-12-01T09:00:00"), DecodeError),
        (lambda d: d.update(time="2026-12-01T09:00:00"), DecodeError),
        (lambda d: d.update(time="yesterday"), DecodeError),
        (lambda d: d.update(source=""), DecodeError),
    ],
)
def test_malformed_events_raise_typed_errors(mutate: Any, error: type[Exception]) -> None:
    doc = valid_doc()
    mutate(doc)
    with pytest.raises(error):
        decode(orjson.dumps(doc))


@pytest.mark.parametrize("raw", [None, b"", b"{", b"[]", b"42", b"\xff\xfe", "null"])
def test_garbage_is_a_decode_error(raw: bytes | str | None) -> None:
    with pytest.raises(DecodeError):
        decode(raw)
