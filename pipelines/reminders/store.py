"""The reminder flow's read-model sink: schedule changes and log rows, through
`reminders.ports.ReadModel`, with database outages waited out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from reminders.ports import ReadModel, StoreOp, open_read_model
from runtime.flow import new_io_loop

# A PostgreSQL restart or a killed backend (CannotConnectNow, AdminShutdown, a closed
# connection) is waited out, not turned into a flow crash: a restart of the flow is far
# costlier (and replays its last epoch).
TRANSIENT_DB_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)
transient = retry(
    retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
    stop=stop_after_attempt(5),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)

# Log rows are purged every this many writes (one write per epoch and worker).
PURGE_EVERY = 1000


class _StorePartition(StatelessSinkPartition[StoreOp]):
    """Owns a private event loop and read model (an asyncpg pool is bound to its loop)."""

    def __init__(self, url: str, log_retention: timedelta) -> None:
        self._loop = new_io_loop()
        self._retention = log_retention
        self._writes = 0
        self._model: ReadModel = self._loop.run_until_complete(self._open(url))

    @transient
    async def _open(self, url: str) -> ReadModel:
        return await open_read_model(url)

    @transient
    async def _write(self, items: list[StoreOp]) -> None:
        await self._model.write(items)
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            await self._model.purge(datetime.now(UTC), self._retention)

    def write_batch(self, items: list[StoreOp]) -> None:
        self._loop.run_until_complete(self._write(items))

    def close(self) -> None:
        self._loop.run_until_complete(self._model.close())
        self._loop.close()


class ReadModelSink(DynamicSink[StoreOp]):
    """Writes schedule changes and log rows to the reminder service's database."""

    def __init__(self, url: str, log_retention: timedelta = timedelta(days=7)) -> None:
        self._url = url
        self._retention = log_retention

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        return _StorePartition(self._url, self._retention)
