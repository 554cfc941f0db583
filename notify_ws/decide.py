"""Whether and what to notify for one event, and where to send it (pure, no I/O).

`task.reopened` notifies as `task.updated` ("Task reopened"); `task.snoozed` does not
notify (the user asked for it, and the moved reminder will notify in time);
`task.snapshot` never notifies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from events.codec import Envelope
from events.payloads import (
    NotificationKind,
    Payload,
    ReminderDigest,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskReminder,
    TaskReopened,
    TaskState,
    TaskUpdated,
)
from notify_ws.preferences import EXTERNAL_CHANNELS, Preferences, quiet_until

MAX_TITLE = 200


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification to persist: `dedupe_key` collapses duplicates of one source event."""

    user_id: str
    kind: NotificationKind
    title: str
    body: str
    task_id: uuid.UUID | None
    event_id: str
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class Route:
    """Where a draft goes: `deliver_at` None means now; `digest` folds deferred ones."""

    channel: str
    deliver_at: datetime | None
    digest: bool


def user_of(envelope: Envelope[Payload]) -> str:
    data = envelope.data
    user = getattr(data, "user_id", None) or envelope.user_id
    return str(user)


def draft(envelope: Envelope[Payload]) -> Draft | None:
    """The notification an event asks for, or None (snapshots, snoozes, unknown types)."""
    data = envelope.data
    user = user_of(envelope)
    if isinstance(data, TaskReminder):
        return Draft(
            user, "task.reminder", _cut(f"Reminder: {data.title}"),
            _reminder_body(data.due_at, data.remind_at),
            data.task_id, envelope.id, f"reminder:{data.reminder_id}",
        )  # fmt: skip
    if isinstance(data, ReminderDigest):
        titles = ", ".join(item.title for item in data.items[:10])
        more = f" and {len(data.items) - 10} more" if len(data.items) > 10 else ""
        return Draft(
            user, "reminder.digest", _cut(f"{len(data.items)} reminders"),
            f"Due soon: {titles}{more}", None, envelope.id, f"digest:{data.digest_id}",
        )  # fmt: skip
    if not isinstance(data, TaskState):
        return None
    made = _task_text(data)
    if made is None:
        return None
    kind, title, body = made
    return Draft(user, kind, _cut(title), body, data.id, envelope.id, f"event:{envelope.id}")


def _task_text(data: TaskState) -> tuple[NotificationKind, str, str] | None:
    if isinstance(data, TaskCreated):
        return "task.created", f"New task: {data.title}", _due_text(data)
    if isinstance(data, TaskUpdated):
        return "task.updated", f"Task updated: {data.title}", "Changed: " + ", ".join(data.changed)
    if isinstance(data, TaskReopened):
        return "task.updated", f"Task reopened: {data.title}", _due_text(data)
    if isinstance(data, TaskCompleted):
        body = "Completed."
        if data.status == "open" and data.due_at is not None:
            body = f"Completed; next occurrence {_local(data.due_at, data.timezone)}."
        return "task.completed", f"Task completed: {data.title}", body
    if isinstance(data, TaskDeleted):
        return "task.deleted", f"Task deleted: {data.title}", "The task was deleted."
    return None  # snapshot, snoozed


def routes(prefs: Preferences, now: datetime) -> list[Route]:
    """The external channels to deliver to; quiet hours defer them (in-app still lands)."""
    until = quiet_until(prefs, now)
    return [
        Route(channel, until, prefs.digest and until is not None)
        for channel in EXTERNAL_CHANNELS
        if prefs.wants(channel)
    ]


def notifies(prefs: Preferences) -> bool:
    """A user with every channel off gets no notification at all."""
    return prefs.channels.in_app or any(prefs.wants(c) for c in EXTERNAL_CHANNELS)


def _due_text(data: TaskState) -> str:
    if data.due_at is None:
        return "No due date."
    return f"Due {_local(data.due_at, data.timezone)}."


def _reminder_body(due_at: datetime | None, remind_at: datetime) -> str:
    when = due_at or remind_at
    return f"Due {when.isoformat()}."


def _local(when: datetime, zone: str) -> str:
    try:
        return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")
    except (KeyError, ValueError):
        return when.isoformat()


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"
