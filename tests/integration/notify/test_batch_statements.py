"""The worker's batch transaction in statements: a batch of one in-app notification sends
five (BEGIN, the user locks, the one read, versions + notification, COMMIT), and what the
folded statement writes (versions only forward, duplicates left out) is still written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from events.codec import Envelope
from events.payloads import Payload, TaskCreated, TaskUpdated
from notify_ws.db import notifications as nt
from notify_ws.decide import Draft, draft
from notify_ws.worker.processor import Item, Processor
from runtime.database import create_pool

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return T0


class Statements:
    """Every statement a connection sends (asyncpg's query logger)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, query: Any) -> None:
        self.sent.append(query.query)

    async def settled(self) -> list[str]:
        await asyncio.sleep(0)  # the logger is called soon after the statement, not in it
        return self.sent

    async def from_here(self) -> None:
        """Forget what was sent so far (a new connection's type introspection, say)."""
        await self.settled()
        self.sent.clear()


def created(user: str, version: int = 1, task_id: uuid.UUID | None = None) -> TaskCreated:
    return TaskCreated(
        id=task_id or uuid.uuid4(), user_id=user, title="Buy milk", created_at=T0,
        updated_at=T0, version=version,
    )  # fmt: skip


def envelope(data: Payload) -> Envelope[Payload]:
    return Envelope(data=data, source="/test", subject="s", user_id="ann")


def drafted(data: Payload) -> tuple[Draft, str | None]:
    made = draft(envelope(data))
    assert made is not None
    return made, None


@pytest.fixture
async def pool(notify_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(notify_db, max_size=1)  # one connection: the one watched
    yield pool
    await pool.close()


@pytest.fixture
async def statements(pool: asyncpg.Pool) -> AsyncIterator[Statements]:
    watch = Statements()
    async with pool.acquire() as conn:
        conn.add_query_logger(watch)
    yield watch
    async with pool.acquire() as conn:
        conn.remove_query_logger(watch)


async def versions(conn: Any) -> dict[uuid.UUID, int]:
    return {r["task_id"]: r["version"] for r in await conn.fetch("TABLE task_versions")}


async def test_one_notification_is_five_statements(
    pool: asyncpg.Pool, statements: Statements, db: asyncpg.Connection
) -> None:
    processor, task = Processor(pool, FixedClock()), created("ann", version=4)
    # The first batch on a connection also has asyncpg look up types; count a later one.
    await processor.process([Item(envelope(created("ann")), traceparent=None, ref=None)])
    await statements.from_here()

    result = await processor.process([Item(envelope(task), traceparent=None, ref=None)])

    sent = await statements.settled()
    # BEGIN, the user locks, the one read, versions + notification in one statement, COMMIT
    # (before: the version upsert was a statement of its own, six in all).
    assert len(sent) == 5, sent
    assert sent[0].startswith("BEGIN") and sent[-1].startswith("COMMIT")
    (note,) = result.created
    assert (note.user_id, note.task_id, note.seq) == ("ann", task.id, 2)
    stored = await db.fetchval("SELECT task_id FROM notifications WHERE id = $1", note.id)
    assert stored == task.id
    assert (await versions(db))[task.id] == 4


async def test_versions_only_move_forward_and_ride_along_with_a_duplicate(
    db: asyncpg.Connection,
) -> None:
    task, other = created("ann", version=5), uuid.uuid4()
    event = drafted(task)
    async with db.transaction():
        (first,) = await nt.insert_many(db, [event], T0, {task.id: 5})
    async with db.transaction():
        # The same source event again: no notification; an older version does not win,
        # a newer one of another task is saved all the same.
        again = await nt.insert_many(db, [event], T0, {task.id: 3, other: 2})
    assert first.seq == 1 and again == []
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1
    assert await versions(db) == {task.id: 5, other: 2}


async def test_a_larger_batch_is_one_pipelined_insert_and_one_read(
    pool: asyncpg.Pool, statements: Statements, db: asyncpg.Connection
) -> None:
    a, b = created("ann", version=2), created("ann", version=7)
    updated = TaskUpdated(**{**a.model_dump(), "version": 3}, changed=("title",))
    first = drafted(a)
    async with pool.acquire() as conn:
        await nt.insert_many(conn, [drafted(created("bo")), drafted(created("bo"))], T0)
        await statements.from_here()
        async with conn.transaction():
            notes = await nt.insert_many(
                conn, [first, drafted(b), drafted(updated), first], T0, {a.id: 3, b.id: 7}
            )
    sent = await statements.settled()
    assert len(sent) == 4, sent  # BEGIN, executemany (one round trip), SELECT, COMMIT
    assert [n.seq for n in notes] == [1, 2, 3]  # the duplicate of `a` left out
    assert [n.task_id for n in notes] == [a.id, b.id, a.id]
    assert await versions(db) == {a.id: 3, b.id: 7}


async def test_versions_without_notifications_are_one_statement_and_nothing_is_none(
    pool: asyncpg.Pool, statements: Statements, db: asyncpg.Connection
) -> None:
    task = uuid.uuid4()
    async with pool.acquire() as conn:
        await statements.from_here()
        assert await nt.insert_many(conn, [], T0, {}) == []
        assert await statements.settled() == []
        assert await nt.insert_many(conn, [], T0, {task: 9}) == []
    assert len(await statements.settled()) == 1
    assert await versions(db) == {task: 9}
