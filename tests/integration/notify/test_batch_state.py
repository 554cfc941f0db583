"""The worker's one read before deciding a batch: erased users, preferences (defaults for
users without any) and applied task versions, row-locked for the rest of the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from notify_ws.db import batch_state
from notify_ws.preferences import Channels, Preferences

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


async def test_reads_erased_users_preferences_and_locked_versions(notify_db: str) -> None:
    setup = await asyncpg.connect(notify_db)
    other = await asyncpg.connect(notify_db)
    task, untouched = uuid.uuid4(), uuid.uuid4()
    quiet = Preferences(channels=Channels(in_app=False), digest=True)
    try:
        await setup.execute(
            "INSERT INTO erased_users (user_id, erasure_id, requested_at, erased_at)"
            " VALUES ('gone', $1, $2, $2)",
            uuid.uuid4(), NOW,
        )  # fmt: skip
        await setup.execute(
            "INSERT INTO preferences (user_id, doc, updated_at) VALUES ('quiet', $1::jsonb, $2)",
            quiet.model_dump_json(), NOW,
        )  # fmt: skip
        await setup.executemany(
            "INSERT INTO task_versions (task_id, version) VALUES ($1, $2)",
            [(task, 3), (untouched, 9)],
        )
        async with setup.transaction():
            state = await batch_state.load(setup, ["gone", "quiet", "plain"], [task, uuid.uuid4()])
            # The version row stays locked until this transaction ends; others are free.
            with pytest.raises(asyncpg.LockNotAvailableError):
                await other.execute(
                    "SELECT 1 FROM task_versions WHERE task_id = $1 FOR UPDATE NOWAIT", task
                )
            await other.execute(
                "SELECT 1 FROM task_versions WHERE task_id = $1 FOR UPDATE NOWAIT", untouched
            )
    finally:
        await setup.close()
        await other.close()
    assert state.erased == {"gone"}
    assert state.prefs == {"gone": Preferences(), "quiet": quiet, "plain": Preferences()}
    assert state.versions == {task: 3}


async def test_nothing_asked_reads_nothing(notify_db: str) -> None:
    conn = await asyncpg.connect(notify_db)
    try:
        state = await batch_state.load(conn, [], [])
    finally:
        await conn.close()
    assert state == batch_state.BatchState(set(), {}, {})
