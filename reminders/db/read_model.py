"""The read model's writer as the dataflow uses it (`reminders.ports.ReadModel`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from reminders.db.migrate import apply_migrations
from reminders.db.store import (
    ErasedUser,
    LogEntry,
    ScheduleChange,
    SentDelivery,
    last_sent,
    purge_log,
    purge_sent,
    record_sent,
    write_batch,
)
from runtime.database import create_pool


class PostgresReadModel:
    """A small pool of its own (the flow's sink owns one per worker)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresReadModel:
        pool = await create_pool(url, max_size=2)
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def write(self, ops: Sequence[ScheduleChange | LogEntry | ErasedUser]) -> None:
        changes = [op for op in ops if isinstance(op, ScheduleChange)]
        entries = [op for op in ops if isinstance(op, LogEntry)]
        erased = [op for op in ops if isinstance(op, ErasedUser)]
        async with self._pool.acquire() as conn:
            await write_batch(conn, changes, entries, erased)

    async def purge(self, now: datetime, keep: timedelta) -> int:
        async with self._pool.acquire() as conn:
            return await purge_log(conn, now, keep)

    async def record_sent(self, deliveries: Sequence[SentDelivery]) -> None:
        async with self._pool.acquire() as conn:
            await record_sent(conn, deliveries)

    async def last_sent(self, span: timedelta) -> list[SentDelivery]:
        async with self._pool.acquire() as conn:
            return await last_sent(conn, span)

    async def purge_sent(self, now: datetime, keep: timedelta) -> int:
        async with self._pool.acquire() as conn:
            return await purge_sent(conn, now, keep)

    async def close(self) -> None:
        await self._pool.close()
