"""What the reminder dataflow needs from the reminder service: the rows it writes to the
read model and the writer that stores them. The flow imports this, never `reminders.db`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from reminders.db.store import ErasedUser, LogEntry, ScheduleChange, SentDelivery

# ErasedUser: delete the user's rows and remember them (`user.erased`).
StoreOp = ScheduleChange | LogEntry | ErasedUser

__all__ = [
    "ErasedUser",
    "LogEntry",
    "ReadModel",
    "ScheduleChange",
    "SentDelivery",
    "StoreOp",
    "open_read_model",
]


class ReadModel(Protocol):
    """Stores batches of schedule changes, log rows and erasures; every write is idempotent."""

    async def write(self, ops: Sequence[StoreOp]) -> None: ...

    async def purge(self, now: datetime, keep: timedelta) -> int:
        """Forget log rows older than `keep`; returns how many."""
        ...

    async def record_sent(self, deliveries: Sequence[SentDelivery]) -> None:
        """Record messages before they are produced (idempotent by event id)."""
        ...

    async def last_sent(self, span: timedelta) -> list[SentDelivery]:
        """The records within `span` of the newest one: what a replay can fire again."""
        ...

    async def purge_sent(self, now: datetime, keep: timedelta) -> int:
        """Forget sent-message records older than `keep`; returns how many."""
        ...

    async def close(self) -> None: ...


async def open_read_model(url: str) -> ReadModel:
    """The PostgreSQL read model at `url`, migrated to the current schema."""
    from reminders.db.read_model import PostgresReadModel

    return await PostgresReadModel.open(url)
