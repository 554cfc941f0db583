"""The write hot paths: a task row and its outbox row in one statement.

Creates are the busiest write; one statement (a data-modifying CTE) halves the round
trips and skips the ORM's per-row work. It runs in the caller's transaction when there is
one (an `Idempotency-Key` joins it), else on its own (the statement is atomic). A change
of an existing task (update, complete, reopen, snooze) saves the row it locked and writes
its event the same way, in the change's transaction. Each records the row it wrote
(`task_api.db.written`) so the relay can publish it the moment the transaction commits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from events.codec import Envelope, encode
from events.payloads import TaskState
from task_api.db import written
from task_api.db.erasures import is_erased_refusal
from task_api.db.outbox import trace_headers
from task_api.db.relay_store import PendingEvent, header_pairs
from task_api.exceptions import UserGone

INSERT_TASK_WITH_EVENT = """
WITH new_task AS (
    INSERT INTO tasks (id, user_id, created_at, title, description, due_at, timezone, priority,
                       tags, reminders, recurrence, status, updated_at, completed_at,
                       snoozed_until, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15, $16)
)
INSERT INTO outbox (event_id, topic, key, event_type, payload, headers, created_at)
VALUES ($17, $18, $19, $20, $21, $22::jsonb, $23)
RETURNING id
"""
UPDATE_TASK_WITH_EVENT = """
WITH changed AS (
    UPDATE tasks SET title = $2, description = $3, due_at = $4, timezone = $5, priority = $6,
                     tags = $7, reminders = $8::jsonb, recurrence = $9, status = $10,
                     updated_at = $11, completed_at = $12, snoozed_until = $13, version = $14
    WHERE id = $1
)
INSERT INTO outbox (event_id, topic, key, event_type, payload, headers, created_at)
VALUES ($15, $16, $17, $18, $19, $20::jsonb, $21)
RETURNING id, ARRAY(
    SELECT o.id FROM outbox o WHERE o.key = $17 AND o.published_at IS NULL ORDER BY o.id
) AS older
"""


async def insert_task_with_event(
    conn: BaseDBAsyncClient, task: TaskState, topic: str, envelope: Envelope[Any]
) -> None:
    """Insert a new task and the event announcing it, atomically (UserGone for a user who
    was erased: the tasks table's trigger refuses the row)."""
    try:
        # asyncpg directly (Tortoise's query wrapper adds nothing to one fixed statement);
        # asyncpg prepares the statement once per connection and reuses it.
        event = _event(task, topic, envelope)
        async with conn.acquire_connection() as raw:
            row_id = await raw.fetchval(
                INSERT_TASK_WITH_EVENT, task.id, task.user_id, task.created_at,
                *_content(task), *event,
            )  # fmt: skip
    except Exception as exc:
        if is_erased_refusal(exc):
            raise UserGone() from None
        raise
    # A new task's key has no older events.
    written.record(_pending(row_id, event))


async def update_task_with_event(
    conn: BaseDBAsyncClient, task: TaskState, topic: str, envelope: Envelope[Any]
) -> None:
    """Save a changed task (its row locked by the caller's transaction) and its event, in
    one round trip: the ORM's save and insert were two, at every update and completion."""
    event = _event(task, topic, envelope)
    async with conn.acquire_connection() as raw:
        row = await raw.fetchrow(UPDATE_TASK_WITH_EVENT, task.id, *_content(task), *event)
    written.record(_pending(row["id"], event), tuple(row["older"]))


def _content(task: TaskState) -> tuple[Any, ...]:
    """The columns a change may write, in table order from title to version."""
    return (
        task.title,
        task.description,
        task.due_at,
        task.timezone,
        task.priority,
        list(task.tags),
        orjson.dumps(
            [r.model_dump(mode="json", exclude_none=True) for r in task.reminders]
        ).decode(),
        task.recurrence,
        task.status,
        task.updated_at,
        task.completed_at,
        task.snoozed_until,
        task.version,
    )


def _event(task: TaskState, topic: str, envelope: Envelope[Any]) -> tuple[Any, ...]:
    return (
        uuid.UUID(envelope.id),
        topic,
        str(task.id),
        envelope.type,
        encode(envelope),
        orjson.dumps(trace_headers(envelope)).decode(),
        datetime.now(UTC),
    )


def _pending(row_id: int, event: tuple[Any, ...]) -> PendingEvent:
    """The outbox row `_event` wrote, as the relay would have claimed it."""
    event_id, topic, key, event_type, payload, headers, created_at = event
    return PendingEvent(
        row_id, event_id, topic, key, event_type, payload, header_pairs(headers), created_at
    )
