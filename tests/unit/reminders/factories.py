"""Builders of task events and Kafka messages for the reminder tests (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage

from events.codec import Envelope, encode
from events.payloads import TASK_EVENTS, ReminderSpec, TaskState

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, aligned
TASK = uuid.UUID("01900000-0000-7000-8000-000000000001")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
_EVENT_TYPES = {cls.event_type: cls for cls in TASK_EVENTS}


def task(
    *,
    version: int = 1,
    due_at: datetime | None = None,
    before: tuple[timedelta, ...] = (),
    at: tuple[datetime, ...] = (),
    updated_at: datetime = T0,
    task_id: uuid.UUID = TASK,
    user_id: str = "alice",
    **fields: Any,
) -> dict[str, Any]:
    """Keyword arguments for a TaskState payload."""
    reminders = tuple(ReminderSpec(before=b) for b in before) + tuple(
        ReminderSpec(at=a) for a in at
    )
    return {
        "id": task_id,
        "user_id": user_id,
        "title": fields.pop("title", "Pay rent"),
        "due_at": due_at,
        "reminders": reminders,
        "created_at": fields.pop("created_at", updated_at),
        "updated_at": updated_at,
        "version": version,
        **fields,
    }


def payload(event_type: str, **kwargs: Any) -> TaskState:
    cls = _EVENT_TYPES[event_type]
    extra: dict[str, Any] = {"changed": ("due_at",)} if event_type == "task.updated" else {}
    return cls(**task(**kwargs), **extra)


def message(
    event_type: str, offset: int = 0, traceparent: str | None = TRACEPARENT, **kwargs: Any
) -> KafkaSourceMessage[bytes | None, bytes | None]:
    """A Kafka message carrying one encoded task event, as KafkaSource emits it."""
    data = payload(event_type, **kwargs)
    envelope = Envelope(
        data=data, source="/taskflow/task-service", subject=str(data.id), user_id=data.user_id
    )
    headers = [("ce_type", event_type.encode())]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return KafkaSourceMessage(
        key=str(data.id).encode(),
        value=encode(envelope),
        topic="taskflow.tasks",
        headers=headers,
        partition=0,
        offset=offset,
    )
