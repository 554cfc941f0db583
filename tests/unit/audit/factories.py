"""Events for audit tests: real CloudEvents bytes made with the shared codec."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from events.codec import Envelope, encode, new_event_id
from events.payloads import (
    NotificationBody,
    NotificationCreated,
    Payload,
    TaskCreated,
    TaskReminder,
    TaskSnapshotted,
    TaskUpdated,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def task_payload(
    kind: type[TaskCreated] | type[TaskUpdated] | type[TaskSnapshotted] = TaskCreated,
    user: str = "alice",
    task_id: uuid.UUID | None = None,
    title: str = "buy milk",
    version: int = 1,
) -> Payload:
    extra = {"changed": ("title",)} if kind is TaskUpdated else {}
    return kind(
        id=task_id or uuid.uuid4(),
        user_id=user,
        title=title,
        description="from the corner shop",
        due_at=T0 + timedelta(days=1),
        created_at=T0,
        updated_at=T0,
        version=version,
        tags=("home",),
        **extra,
    )


def reminder_payload(user: str = "alice", task_id: uuid.UUID | None = None) -> Payload:
    return TaskReminder(
        reminder_id=new_event_id(),
        task_id=task_id or uuid.uuid4(),
        user_id=user,
        title="buy milk",
        remind_at=T0,
        task_version=1,
        fired_at=T0,
    )


def notification_payload(user: str = "alice", task_id: uuid.UUID | None = None) -> Payload:
    return NotificationCreated(
        user_id=user,
        notification=NotificationBody(
            id=uuid.uuid4(),
            seq=1,
            kind="task.created",
            title="New task",
            body="buy milk",
            task_id=task_id or uuid.uuid4(),
            event_id=new_event_id(),
            created_at=T0,
        ),
    )


def event_bytes(payload: Payload, user: str = "alice", event_id: str | None = None) -> bytes:
    subject = str(getattr(payload, "id", "") or getattr(payload, "task_id", ""))
    envelope = Envelope(
        data=payload,
        source="/taskflow/test",
        subject=subject,
        user_id=user,
        id=event_id or new_event_id(),
        time=T0,
    )
    return encode(envelope)
