"""A change of an existing task is its lock and one statement that saves the row and
writes the event (the ORM's save and the outbox insert were two)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from tortoise.transactions import in_transaction

from events.codec import decode
from task_api import services
from task_api.commands import UpdateTask
from tests.integration.task_api.conftest import create

pytestmark = pytest.mark.integration


async def _outbox_event(task_db_url: str, task_id: str, event_type: str) -> Any:
    conn = await asyncpg.connect(task_db_url)
    try:
        payload = await conn.fetchval(
            "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2", task_id, event_type
        )
    finally:
        await conn.close()
    assert payload is not None, f"no {event_type} in the outbox"
    return decode(bytes(payload))


async def test_complete_is_the_lock_and_one_write(
    app: Quart, client: Client, auth: dict[str, str], user: str, task_db_url: str
) -> None:
    task = await create(client, auth, title="file taxes", due_at="2026-12-01T09:00:00Z")
    sink = app.extensions["task_api"].sink
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    async with in_transaction() as conn:
        # The transaction's connection (Tortoise lends it under a lock: not held across).
        async with conn.acquire_connection() as raw:
            # asyncpg looks up bigint[] (the write returns older ids) once per connection.
            await raw.fetchval("SELECT '{}'::bigint[]")
            raw.add_query_logger(log)
        completed = await services.complete_task(conn, sink, user, uuid.UUID(task["id"]), 1, now)
        async with conn.acquire_connection() as raw:
            raw.remove_query_logger(log)
    assert len(sent) == 2, sent  # SELECT … FOR UPDATE, then UPDATE + INSERT in one
    assert "FOR UPDATE" in sent[0] and "INSERT INTO outbox" in sent[1]
    assert (completed.status, completed.version) == ("completed", 2)

    stored = await (await client.get(f"/api/v1/tasks/{task['id']}", headers=auth)).get_json()
    assert stored["status"] == "completed" and stored["version"] == 2
    assert stored["completed_at"] is not None
    event = await _outbox_event(task_db_url, task["id"], "task.completed")
    assert event.data.version == 2
    assert event.data.completed_occurrence_due_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_an_update_stores_every_changed_field_and_its_event(
    app: Quart, client: Client, auth: dict[str, str], user: str, task_db_url: str
) -> None:
    task = await create(client, auth, title="draft", tags=["a"])
    sink = app.extensions["task_api"].sink
    changes = {
        "title": "final",
        "description": "with notes",
        "priority": "high",
        "tags": ("b", "c"),
        "due_at": datetime(2026, 12, 24, 18, 0, tzinfo=UTC),
        "timezone": "Europe/Paris",
    }
    command = UpdateTask(task_id=uuid.UUID(task["id"]), changes=changes, expected_version=1)
    async with in_transaction() as conn:
        await services.update_task(conn, sink, user, command, datetime.now(UTC))

    stored = await (await client.get(f"/api/v1/tasks/{task['id']}", headers=auth)).get_json()
    assert stored["title"] == "final" and stored["description"] == "with notes"
    assert stored["priority"] == "high" and stored["tags"] == ["b", "c"]
    assert stored["due_at"].startswith("2026-12-24T18:00") and stored["timezone"] == "Europe/Paris"
    assert stored["version"] == 2
    event = await _outbox_event(task_db_url, task["id"], "task.updated")
    assert event.data.title == "final" and event.data.version == 2
