"""The audit dataflow's sink: decodes and writes each batch in a two-stage pipeline.

Each worker's partition runs an asyncio loop on its own thread for the database (the
asyncpg pool is created on that loop; a pool made elsewhere is "attached to a different
loop"). `write_batch` decodes chunk k+1 on the Bytewax worker thread while chunk k is
being inserted, and returns only when every chunk is committed, so Bytewax's epoch (and
its recovery snapshot) never runs ahead of the store. Writes go through `ChainWriter`,
which is idempotent: Bytewax's at-least-once replays are harmless.

Tracing: the decode step (`pipelines.audit.decode.to_item_traced`, the default) opens one
CONSUMER span per message, child of its producer span; each chunk write gets one
`audit.write` span linked to the events' producer spans (up to `MAX_LINKS`), the
OpenTelemetry pattern for batch consumers. `TASKFLOW_AUDIT_FLOW_MESSAGE_SPANS=false`
keeps only the batch spans.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from prometheus_client import Counter, Histogram

from audit_store.crypto import Keyring
from audit_store.db.pool import create_pool
from audit_store.ingest import ChainWriter, WriteResult
from audit_store.ports import Clock, DeadLetters
from audit_store.records import AuditRecord, Poison
from runtime.flow import new_io_loop

Message = KafkaSourceMessage[bytes | None, bytes | None]
Item = AuditRecord | Poison
Decode = Callable[[Message], Item]
T = TypeVar("T")
MAX_LINKS = 128
CHUNK = 1000

ENTRIES = Counter("taskflow_audit_flow_entries_written", "Audit entries inserted by the flow")
DUPLICATES = Counter("taskflow_audit_flow_duplicates", "Messages skipped: event id already stored")
DEAD_LETTERS = Counter("taskflow_audit_flow_dead_letters", "Messages sent to the DLQ")
WRITE_SECONDS = Histogram(
    "taskflow_audit_flow_write_seconds",
    "Time to write one chunk (transaction included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
_tracer = trace.get_tracer("pipelines.audit")


class BatchWriter(Protocol):
    """What the sink writes through: `ChainWriter` over a pool, or a fake in tests."""

    async def write(self, items: Sequence[Item]) -> WriteResult: ...

    async def close(self) -> None: ...


WriterFactory = Callable[[], Coroutine[Any, Any, BatchWriter]]


class PooledWriter:
    """`ChainWriter` with the pool and dead-letter publisher it owns."""

    def __init__(self, writer: ChainWriter, pool: Any, dead_letters: DeadLetters) -> None:
        self._writer, self._pool, self._dead_letters = writer, pool, dead_letters

    @classmethod
    async def open(
        cls,
        database_url: str,
        dead_letters: DeadLetters,
        clock: Clock,
        keyring: Keyring | None = None,
    ) -> PooledWriter:
        pool = await create_pool(database_url, size=2)
        return cls(ChainWriter(pool, dead_letters, clock, keyring), pool, dead_letters)

    async def write(self, items: Sequence[Item]) -> WriteResult:
        started = time.perf_counter()
        with _tracer.start_as_current_span(
            "audit.write", kind=SpanKind.CONSUMER, links=links_of(items)
        ) as span:
            result = await self._writer.write(items)
            span.set_attributes(
                {
                    "messaging.batch.message_count": len(items),
                    "taskflow.audit.inserted": result.inserted,
                    "taskflow.audit.duplicates": result.duplicates,
                    "taskflow.audit.dead_lettered": result.dead_lettered,
                }
            )
        WRITE_SECONDS.observe(time.perf_counter() - started)
        return result

    async def close(self) -> None:
        await self._pool.close()
        close = getattr(self._dead_letters, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def links_of(items: Sequence[Item], limit: int = MAX_LINKS) -> list[Link]:
    """Span links to the producers of (up to `limit`) records in a batch."""
    links: list[Link] = []
    for item in items:
        if len(links) >= limit:
            break
        if isinstance(item, AuditRecord) and item.traceparent and item.trace_id:
            parts = item.traceparent.split("-")
            try:
                context = SpanContext(
                    int(parts[1], 16),
                    int(parts[2], 16),
                    is_remote=True,
                    trace_flags=TraceFlags(int(parts[3], 16) & 1),
                )
            except (IndexError, ValueError):
                continue
            links.append(Link(context))
    return links


class _StorePartition(StatelessSinkPartition[Message]):
    def __init__(self, open_writer: WriterFactory, decode: Decode, chunk: int = CHUNK) -> None:
        self._decode = decode
        self._chunk = chunk
        self._loop = new_io_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="audit-store-io", daemon=True
        )
        self._thread.start()
        self._writer: BatchWriter = self._run(open_writer()).result()

    def _run(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def write_batch(self, items: list[Message]) -> None:
        pending: Future[WriteResult] | None = None
        for start in range(0, len(items), self._chunk):
            decoded = [self._decode(m) for m in items[start : start + self._chunk]]
            if pending is not None:
                _count(pending.result())  # chunks of one chain must commit in order
            pending = self._run(self._writer.write(decoded))
        if pending is not None:
            _count(pending.result())

    def close(self) -> None:
        try:
            self._run(self._writer.close()).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


def _count(result: WriteResult) -> None:
    ENTRIES.inc(result.inserted)
    DUPLICATES.inc(result.duplicates)
    DEAD_LETTERS.inc(result.dead_lettered)


class AuditStoreSink(DynamicSink[Message]):
    """Decodes Kafka messages and writes entries (dead-lettering poison) from every worker."""

    def __init__(self, open_writer: WriterFactory, decode: Decode, chunk: int = CHUNK) -> None:
        self._open_writer = open_writer
        self._decode = decode
        self._chunk = chunk

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        return _StorePartition(self._open_writer, self._decode, self._chunk)
