"""Typed, frozen, versioned payloads: the `data` of every TaskFlow CloudEvent.

Decoding ignores unknown fields (v1 only ever adds fields); encoding writes every field.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

Priority = Literal["low", "medium", "high"]
TaskStatus = Literal["open", "completed"]


class Payload(BaseModel):
    """Base of every event payload; `event_type` and `schema_version` key the codec registry."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class ReminderSpec(BaseModel):
    """One reminder of a task: `before` its due time, or `at` a fixed instant."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    before: timedelta | None = None
    at: AwareDatetime | None = None

    @model_serializer(mode="wrap")
    def _only_the_given_one(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        return {key: value for key, value in dumped.items() if value is not None}

    @model_validator(mode="after")
    def _exactly_one(self) -> ReminderSpec:
        if (self.before is None) == (self.at is None):
            raise ValueError("a reminder needs exactly one of 'before' or 'at'")
        return self


class TaskState(Payload):
    """The full state of a task after a change."""

    id: uuid.UUID
    user_id: str
    title: str
    description: str | None = None
    due_at: AwareDatetime | None = None
    timezone: str = "UTC"
    priority: Priority = "medium"
    tags: tuple[str, ...] = ()
    reminders: tuple[ReminderSpec, ...] = ()
    recurrence: str | None = None
    status: TaskStatus = "open"
    created_at: AwareDatetime
    updated_at: AwareDatetime
    completed_at: AwareDatetime | None = None
    snoozed_until: AwareDatetime | None = None
    version: int


class TaskCreated(TaskState):
    event_type: ClassVar[str] = "task.created"


class TaskUpdated(TaskState):
    event_type: ClassVar[str] = "task.updated"
    changed: tuple[str, ...]


class TaskCompleted(TaskState):
    """A completion; for a recurring task the state stays open with `due_at` advanced."""

    event_type: ClassVar[str] = "task.completed"
    completed_occurrence_due_at: AwareDatetime | None = None


class TaskReopened(TaskState):
    event_type: ClassVar[str] = "task.reopened"


class TaskSnoozed(TaskState):
    event_type: ClassVar[str] = "task.snoozed"


class TaskDeleted(TaskState):
    event_type: ClassVar[str] = "task.deleted"


class TaskSnapshotted(TaskState):
    """Live state republished to rebuild consumers' state: not a change, never notified."""

    event_type: ClassVar[str] = "task.snapshot"


ReminderKind = Literal["before", "at", "due", "snooze", "missed"]


class TaskReminder(Payload):
    """A reminder that fired; `reminder_id` is deterministic so duplicates collapse."""

    event_type: ClassVar[str] = "task.reminder"
    reminder_id: str
    task_id: uuid.UUID
    user_id: str
    title: str
    remind_at: AwareDatetime
    due_at: AwareDatetime | None = None
    kind: ReminderKind = "before"
    task_version: int
    fired_at: AwareDatetime


class DigestItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    reminder_id: str
    task_id: uuid.UUID
    title: str
    remind_at: AwareDatetime
    due_at: AwareDatetime | None = None
    kind: ReminderKind = "before"


class ReminderDigest(Payload):
    """Several reminders of one user that fell due in one window, sent as one."""

    event_type: ClassVar[str] = "reminder.digest"
    digest_id: str
    user_id: str
    window_start: AwareDatetime
    window_end: AwareDatetime
    items: tuple[DigestItem, ...]


NotificationKind = Literal[
    "task.created",
    "task.updated",
    "task.completed",
    "task.deleted",
    "task.reminder",
    "reminder.digest",
]


class NotificationBody(BaseModel):
    """The notification `N` of api.md, as WebSocket clients receive it."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    id: uuid.UUID
    seq: int
    kind: NotificationKind
    title: str
    body: str
    task_id: uuid.UUID | None = None
    event_id: str
    created_at: AwareDatetime
    read: bool = False


class NotificationCreated(Payload):
    event_type: ClassVar[str] = "notification.created"
    user_id: str
    notification: NotificationBody


Channel = Literal["in_app", "email", "push", "webhook"]


class NotificationDelivered(Payload):
    event_type: ClassVar[str] = "notification.delivered"
    notification_id: uuid.UUID
    user_id: str
    channel: Channel
    delivered_at: AwareDatetime


class NotificationFailed(Payload):
    event_type: ClassVar[str] = "notification.failed"
    notification_id: uuid.UUID
    user_id: str
    channel: Channel
    error: str
    attempts: int
    failed_at: AwareDatetime


ErasingService = Literal["tasks", "notifications", "reminders", "audit"]
ErasureOutcome = Literal["completed", "deferred_legal_hold"]


class UserErased(Payload):
    """A user asked to be forgotten (or an operator did it for them). The task service
    deleted their tasks in the transaction that wrote this event; every other service
    applies it to its own data and keeps an erased-user record, so a later event of the
    same user (task events are keyed by task, this one by user) resurrects nothing.
    Topic `taskflow.tasks`, key: the user id."""

    event_type: ClassVar[str] = "user.erased"
    user_id: str
    erasure_id: uuid.UUID
    requested_at: AwareDatetime
    # "self" (the user's own token) or the operator's user id.
    requested_by: str


class UserErasureApplied(Payload):
    """One service finished its part of an erasure (or deferred it under a legal hold).
    Each service publishes it on the topic it produces to (notifications on
    `taskflow.notifications`, the reminder flow on `taskflow.reminders`); the audit store,
    which reads every topic, records them and answers the erasure status."""

    event_type: ClassVar[str] = "user.erasure.applied"
    user_id: str
    erasure_id: uuid.UUID
    service: ErasingService
    outcome: ErasureOutcome = "completed"
    applied_at: AwareDatetime


TASK_EVENTS: tuple[type[TaskState], ...] = (
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskReopened,
    TaskSnoozed,
    TaskDeleted,
    TaskSnapshotted,
)
ALL_PAYLOADS: tuple[type[Payload], ...] = (
    *TASK_EVENTS,
    TaskReminder,
    ReminderDigest,
    NotificationCreated,
    NotificationDelivered,
    NotificationFailed,
    UserErased,
    UserErasureApplied,
)


def as_json_dict(payload: Payload) -> dict[str, Any]:
    """The payload as JSON-ready data (ISO 8601 datetimes and durations, string UUIDs)."""
    return payload.model_dump(mode="json")
