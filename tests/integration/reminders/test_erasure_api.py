"""The read model and read API around erasure: export contents, rows and history gone,
nothing written again for an erased user, 410 afterwards, other users untouched."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from quart.typing import TestClientProtocol as Client

from reminders.db.store import ErasedUser, LogEntry, write_batch
from tests.integration.reminders.test_api import NOW, change, client, token  # noqa: F401

pytestmark = pytest.mark.integration

TASK = str(uuid.UUID(int=1))


async def test_export_then_erasure_removes_rows_history_and_refuses(
    client: Client,  # noqa: F811
    db: asyncpg.Connection,
) -> None:
    fired = LogEntry("r-1", "fired", 0.25, "alice", TASK)
    await write_batch(db, [change(1, "alice", 1, 2), change(2, "bob", 1)], [fired])
    response = await client.get("/api/v1/me/export", headers=token())
    assert response.status_code == 200
    doc = await response.get_json()
    assert doc["service"] == "reminders" and doc["user_id"] == "alice"
    assert [(r["task_id"], r["remind_at"]) for r in doc["scheduled"]] == [
        (TASK, "2026-01-05T10:00:00+00:00"),
        (TASK, "2026-01-05T11:00:00+00:00"),
    ]
    assert [(h["id"], h["kind"], h["task_id"]) for h in doc["history"]] == [("r-1", "fired", TASK)]
    assert "bob" not in str(doc)

    erasure = uuid.uuid4()
    await write_batch(db, [], [], [ErasedUser("alice", str(erasure), NOW)])
    # A schedule change of alice that arrives later (a replay, a late event) writes nothing.
    await write_batch(db, [change(3, "alice", 4)], [])
    assert await db.fetchval("SELECT count(*) FROM scheduled_reminder WHERE user_id = 'alice'") == 0
    # The log row stays (metrics stay idempotent) without saying whose it was.
    row = await db.fetchrow("SELECT user_id, task_id FROM flow_log WHERE id = 'r-1'")
    assert (row["user_id"], row["task_id"]) == (None, None)
    assert await db.fetchval("SELECT erasure_id FROM erased_users WHERE user_id = 'alice'") == (
        erasure
    )
    for path in ("/api/v1/me/export", "/api/v1/reminders"):
        response = await client.get(path, headers=token())
        assert response.status_code == 410, path
        assert (await response.get_json())["type"].endswith("/user-erased")
    bob = await (await client.get("/api/v1/reminders", headers=token("bob"))).get_json()
    assert len(bob["items"]) == 1
