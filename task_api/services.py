"""Use cases of the task service: each change writes the task and its one event together.

Every function takes the open transaction (`conn`) explicitly: the task row and the
outbox row commit or roll back as one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from uuid_utils.compat import uuid7

from events.codec import Envelope
from events.payloads import (
    ReminderSpec,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskReopened,
    TaskSnapshotted,
    TaskSnoozed,
    TaskState,
    TaskUpdated,
)
from events.topics import Topics
from observability.propagation import current_traceparent
from reminders.domain.recurrence import next_occurrence
from task_api.commands import WRITABLE, CreateTask, UpdateTask
from task_api.db import erasures, outbox
from task_api.db.models import Task
from task_api.db.writes import insert_task_with_event, update_task_with_event
from task_api.exceptions import (
    InvalidTask,
    StateConflict,
    TaskNotFound,
    UserGone,
    VersionMismatch,
)


@dataclass(frozen=True, slots=True)
class EventSink:
    """Where use cases put their event: the outbox, on the task topic, as this source."""

    topics: Topics
    source: str

    def envelope(self, payload: TaskState) -> Envelope[TaskState]:
        return Envelope(
            data=payload,
            source=self.source,
            subject=str(payload.id),
            user_id=payload.user_id,
            traceparent=current_traceparent(),
        )

    async def emit(self, conn: BaseDBAsyncClient, payload: TaskState) -> None:
        await outbox.enqueue(conn, self.topics.tasks, str(payload.id), self.envelope(payload))


def state_of(task: Task) -> dict[str, Any]:
    """The task's fields as TaskState keyword arguments."""
    return {
        "id": task.id,
        "user_id": task.user_id,
        "title": task.title,
        "description": task.description,
        "due_at": task.due_at,
        "timezone": task.timezone,
        "priority": task.priority,
        "tags": tuple(task.tags or ()),
        "reminders": tuple(ReminderSpec.model_validate(r) for r in task.reminders or ()),
        "recurrence": task.recurrence,
        "status": task.status,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "completed_at": task.completed_at,
        "snoozed_until": task.snoozed_until,
        "version": task.version,
    }


def snapshot(task: Task) -> TaskState:
    return TaskState(**state_of(task))


def _reminders_json(reminders: Iterable[ReminderSpec]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json", exclude_none=True) for r in reminders]


def _stored(name: str, value: Any) -> Any:
    """A command's field value as the task row holds it."""
    if name == "reminders":
        return _reminders_json(value)
    if name == "tags":
        return list(value)
    return value


def _check_consistency(task: Task) -> None:
    """Rules across fields, checked on the merged state of a create or patch."""
    _check_rules(task.due_at, ("before" in r for r in task.reminders or ()), task.recurrence)


def _check_rules(due_at: datetime | None, befores: Iterable[bool], recurrence: str | None) -> None:
    if due_at is None:
        for index, before in enumerate(befores):
            if before:
                raise InvalidTask(f"reminders.{index}.before", "a 'before' reminder needs due_at")
        if recurrence:
            raise InvalidTask("recurrence", "a recurring task needs due_at")


async def get_task(conn: BaseDBAsyncClient, user_id: str, task_id: uuid.UUID) -> Task:
    """The user's task; another user's task is indistinguishable from a missing one."""
    task = await Task.filter(id=task_id, user_id=user_id).using_db(conn).first()
    if task is None:
        raise TaskNotFound()
    return task


async def _lock_task(
    conn: BaseDBAsyncClient, user_id: str, task_id: uuid.UUID, if_match: int | None
) -> Task:
    task = await Task.filter(id=task_id, user_id=user_id).select_for_update().using_db(conn).first()
    if task is None:
        # Only on this failure path: an erased user's write says why it cannot succeed.
        if await erasures.is_erased(conn, user_id):
            raise UserGone()
        raise TaskNotFound()
    if if_match is not None and task.version != if_match:
        raise VersionMismatch(f"the task is at version {task.version}, not {if_match}")
    return task


async def _record_change(
    conn: BaseDBAsyncClient,
    sink: EventSink,
    task: Task,
    now: datetime,
    event: type[TaskState],
    **extra: Any,
) -> Task:
    """Bump the version, save the task, and write the change's one event beside it."""
    task.updated_at = now
    task.version += 1
    payload = event(**state_of(task), **extra)
    await update_task_with_event(conn, payload, sink.topics.tasks, sink.envelope(payload))
    return task


async def create_task(
    conn: BaseDBAsyncClient, sink: EventSink, user_id: str, data: CreateTask, now: datetime
) -> TaskState:
    """Create the task; returns its state (the event's payload, reused for the reply)."""
    _check_rules(data.due_at, (r.before is not None for r in data.reminders), data.recurrence)
    # The event is the new row: no ORM object is needed to insert it.
    created = TaskCreated(
        id=uuid7(),
        user_id=user_id,
        title=data.title,
        description=data.description,
        # In UTC, as the task row (and so every later event) holds it.
        due_at=data.due_at.astimezone(UTC) if data.due_at is not None else None,
        timezone=data.timezone,
        priority=data.priority,
        tags=data.tags,
        reminders=data.reminders,
        recurrence=data.recurrence,
        status="open",
        created_at=now,
        updated_at=now,
        version=1,
    )
    await insert_task_with_event(conn, created, sink.topics.tasks, sink.envelope(created))
    return created


async def update_task(
    conn: BaseDBAsyncClient,
    sink: EventSink,
    user_id: str,
    command: UpdateTask,
    now: datetime,
) -> Task:
    """Apply the changes the command names; one that changes nothing emits nothing."""
    task = await _lock_task(conn, user_id, command.task_id, command.expected_version)
    changed: list[str] = []
    for name in WRITABLE:
        if name not in command.changes:
            continue
        value = _stored(name, command.changes[name])
        if getattr(task, name) != value:
            setattr(task, name, value)
            changed.append(name)
    if not changed:
        return task
    _check_consistency(task)
    if "due_at" in changed or "reminders" in changed:
        # A snooze postpones the reminders of the old schedule only.
        task.snoozed_until = None
    return await _record_change(conn, sink, task, now, TaskUpdated, changed=tuple(changed))


async def complete_task(
    conn: BaseDBAsyncClient,
    sink: EventSink,
    user_id: str,
    task_id: uuid.UUID,
    if_match: int | None,
    now: datetime,
) -> Task:
    """Complete; a recurring task advances to its next occurrence and stays open."""
    task = await _lock_task(conn, user_id, task_id, if_match)
    if task.status == "completed":
        raise StateConflict("the task is already completed")
    occurrence = task.due_at
    following = (
        next_occurrence(task.recurrence, task.due_at, task.timezone)
        if task.recurrence and task.due_at
        else None
    )
    if following is not None:
        task.due_at = following
    else:
        task.status = "completed"
        task.completed_at = now
    task.snoozed_until = None
    return await _record_change(
        conn, sink, task, now, TaskCompleted, completed_occurrence_due_at=occurrence
    )


async def reopen_task(
    conn: BaseDBAsyncClient,
    sink: EventSink,
    user_id: str,
    task_id: uuid.UUID,
    if_match: int | None,
    now: datetime,
) -> Task:
    task = await _lock_task(conn, user_id, task_id, if_match)
    if task.status != "completed":
        raise StateConflict("only a completed task can be reopened")
    task.status = "open"
    task.completed_at = None
    return await _record_change(conn, sink, task, now, TaskReopened)


async def snooze_task(
    conn: BaseDBAsyncClient,
    sink: EventSink,
    user_id: str,
    task_id: uuid.UUID,
    until: datetime | None,
    duration: timedelta | None,
    if_match: int | None,
    now: datetime,
) -> Task:
    """Move the next reminder to `until` (or now + `duration`)."""
    task = await _lock_task(conn, user_id, task_id, if_match)
    if task.status == "completed":
        raise StateConflict("a completed task has no reminder to snooze")
    target = until if until is not None else now + (duration or timedelta(0))
    if target <= now:
        raise InvalidTask("until", "must be in the future")
    task.snoozed_until = target
    return await _record_change(conn, sink, task, now, TaskSnoozed)


async def delete_task(
    conn: BaseDBAsyncClient,
    sink: EventSink,
    user_id: str,
    task_id: uuid.UUID,
    if_match: int | None,
    now: datetime,
) -> None:
    task = await _lock_task(conn, user_id, task_id, if_match)
    task.updated_at = now
    task.version += 1
    await task.delete(using_db=conn)
    await sink.emit(conn, TaskDeleted(**state_of(task)))


async def republish_open_tasks(conn: BaseDBAsyncClient, sink: EventSink) -> int:
    """Enqueue a `task.snapshot` of every open task (rebuilds consumers after a broker reset)."""
    count = 0
    async for task in Task.filter(status="open").order_by("id").using_db(conn):
        await sink.emit(conn, TaskSnapshotted(**state_of(task)))
        count += 1
    return count
