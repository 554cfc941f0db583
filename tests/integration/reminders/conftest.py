"""Reminder-service fixtures: a migrated database of its own per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from deploy.broker import LocalBroker, start_broker
from reminders.db.migrate import migrate_url

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def reminders_db(create_database: Callable[[str], Awaitable[str]]) -> str:
    """URL of a fresh, migrated reminder database."""
    url = await create_database("reminders")
    await migrate_url(url)
    return url


@pytest.fixture
async def db(reminders_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the reminder database, emptied before each test."""
    conn = await asyncpg.connect(reminders_db)
    await conn.execute("TRUNCATE scheduled_reminder, flow_log, flow_counter, sent_delivery")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of its own: a test freezes it, which must not stall other tests."""
    local = start_broker(log_file=tmp_path_factory.mktemp("frozen") / "tansu.log")
    try:
        yield local
    finally:
        local.thaw()
        local.stop()
