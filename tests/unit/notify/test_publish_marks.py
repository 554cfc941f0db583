"""Confirmed `notification.created` publishes are recorded in batches: at most one UPDATE
per mark interval, every pending mark on `flush_marks` (the worker's idle turn), and a
failed UPDATE keeps its marks for the next flush."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Message

from events.errors import PublishError
from events.topics import Topics
from notify_ws.db.notifications import Notification
from notify_ws.worker.outbox import Publisher

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


class AckingProducer:
    def produce(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(Message(topic=topic, value=value))
        return future


class RecordingConnection:
    def __init__(self, pool: RecordingPool) -> None:
        self._pool = pool

    async def execute(self, sql: str, ids: Sequence[uuid.UUID], now: datetime) -> str:
        if self._pool.down:
            raise OSError("database down")
        assert sql.startswith("UPDATE notifications SET published_at")  # noqa: S101
        self._pool.updates.append(list(ids))
        return f"UPDATE {len(ids)}"


class RecordingPool:
    def __init__(self) -> None:
        self.updates: list[list[uuid.UUID]] = []
        self.down = False

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[RecordingConnection]:
        yield RecordingConnection(self)


class FixedClock:
    def now(self) -> datetime:
        return T0


def _note(n: int) -> Notification:
    return Notification(id=uuid.UUID(int=n), user_id="u", seq=n, kind="task.created",
                        title="t", body="b", task_id=uuid.UUID(int=100 + n), event_id=f"e-{n}",
                        created_at=T0)  # fmt: skip


def _publisher(pool: RecordingPool, interval: timedelta) -> Publisher:
    return Publisher(AckingProducer(), Topics(), "/n", pool, FixedClock(),  # type: ignore[arg-type]
                     mark_interval=interval)  # fmt: skip


async def test_without_an_interval_each_batch_is_marked_at_once() -> None:
    pool = RecordingPool()
    publisher = _publisher(pool, timedelta(0))
    await publisher.created([_note(1)])
    await publisher.created([_note(2), _note(3)])
    assert pool.updates == [[uuid.UUID(int=1)], [uuid.UUID(int=2), uuid.UUID(int=3)]]


async def test_marks_within_the_interval_wait_for_one_update() -> None:
    pool = RecordingPool()
    publisher = _publisher(pool, timedelta(hours=1))
    await publisher.created([_note(1)])  # the first batch marks at once
    await publisher.created([_note(2)])
    await publisher.created([_note(3)])
    assert pool.updates == [[uuid.UUID(int=1)]]
    await publisher.flush_marks()
    assert pool.updates == [[uuid.UUID(int=1)], [uuid.UUID(int=2), uuid.UUID(int=3)]]
    await publisher.flush_marks()  # nothing pending: no statement
    assert len(pool.updates) == 2


async def test_a_failed_update_keeps_its_marks_for_the_next_flush() -> None:
    pool = RecordingPool()
    publisher = _publisher(pool, timedelta(hours=1))
    await publisher.created([_note(1)])
    await publisher.created([_note(2)])
    pool.down = True
    with pytest.raises(OSError):
        await publisher.flush_marks()
    pool.down = False
    await publisher.created([_note(3)])
    await publisher.flush_marks()
    assert pool.updates[-1] == [uuid.UUID(int=2), uuid.UUID(int=3)]


class TimingOutProducer:
    """Every delivery times out, as after a broker stopped answering; counts renewals."""

    def __init__(self) -> None:
        self.renewed = 0

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(PublishError("Local: Message timed out"))
        return future

    def renew(self) -> None:
        self.renewed += 1


async def test_a_batch_with_nothing_confirmed_renews_the_producer() -> None:
    pool, producer = RecordingPool(), TimingOutProducer()
    publisher = Publisher(producer, Topics(), "/n", pool, FixedClock())  # type: ignore[arg-type]
    await publisher.created([_note(1), _note(2)])
    assert producer.renewed == 1  # a wedged idempotent client would never recover
    assert pool.updates == []  # nothing marked: the sweep re-sends both
