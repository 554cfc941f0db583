"""Edges of the reminder flow: decoding task events, encoding deliveries, DLQ, read-model sink."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage, KafkaSource, KafkaSourceMessage
from bytewax.inputs import StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from events.codec import Envelope, decode, encode
from events.dlq import dlq_headers
from events.errors import DecodeError
from events.payloads import DigestItem, ReminderDigest, TaskReminder, TaskState
from pipelines.reminders_logic import TaskInput
from pipelines.reminders_trace import TRACEPARENT, fire_headers, header_value
from reminders.db.migrate import apply_migrations
from reminders.db.store import LogEntry, ScheduleChange, purge_log, write_batch
from reminders.domain.digest import Delivery, Digest
from reminders.domain.timers import Fired

log = logging.getLogger(__name__)

SOURCE = "/taskflow/reminders"
CONSUMER = "pipelines.reminders"
Raw = KafkaSourceMessage[bytes | None, bytes | None]
SinkMessage = KafkaSinkMessage[bytes | None, bytes | None]
StoreOp = ScheduleChange | LogEntry


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the flow cannot use, with where it came from and why."""

    message: Raw
    error: str


def decode_message(
    msg: Raw | KafkaError[bytes | None, bytes | None],
) -> TaskInput | DeadLetter | None:
    """A task event, a dead letter, or None for a consumer error report (logged)."""
    if isinstance(msg, KafkaError):
        log.warning("kafka consumer error: %s", msg.err)
        return None
    try:
        envelope = decode(msg.value)
    except DecodeError as exc:
        return DeadLetter(msg, str(exc))
    if not isinstance(envelope.data, TaskState):
        return DeadLetter(msg, f"{envelope.type} is not a task event")
    traceparent = header_value(msg.headers, TRACEPARENT) or envelope.traceparent
    return TaskInput(str(envelope.data.id), envelope.type, envelope.data, traceparent)


def dead_letter_message(dlq_topic: str, letter: DeadLetter) -> SinkMessage:
    """The original key, value and headers, plus the origin headers of `events.dlq`."""
    msg = letter.message
    origin = dlq_headers(
        msg.topic or "", msg.partition or 0, msg.offset or 0, CONSUMER, letter.error
    )
    names = {name for name, _ in origin}
    kept = [(k, v) for k, v in msg.headers if k not in names]
    return KafkaSinkMessage(msg.key, msg.value, topic=dlq_topic, headers=kept + origin)


def dead_letter_log(letter: DeadLetter) -> LogEntry:
    msg = letter.message
    return LogEntry(f"dlq/{msg.topic}/{msg.partition}/{msg.offset}", "dlq")


def _reminder(item: Fired) -> TaskReminder:
    return TaskReminder(
        reminder_id=item.reminder_id,
        task_id=item.task_id,
        user_id=item.user_id,
        title=item.title,
        remind_at=item.remind_at,
        due_at=item.due_at,
        kind=item.kind,
        task_version=item.task_version,
        fired_at=item.fired_at,
    )


def _digest(digest: Digest) -> ReminderDigest:
    items = tuple(
        DigestItem(
            reminder_id=i.reminder_id,
            task_id=i.task_id,
            title=i.title,
            remind_at=i.remind_at,
            due_at=i.due_at,
            kind="missed" if i.missed else i.kind,
        )
        for i in digest.items
    )
    return ReminderDigest(
        digest_id=digest.digest_id,
        user_id=digest.user_id,
        window_start=digest.window_start,
        window_end=digest.window_end,
        items=items,
    )


def delivery_message(topic: str, delivery: Delivery, now: datetime) -> SinkMessage:
    """The CloudEvent for a reminder or digest; its event id is the deterministic id."""
    if isinstance(delivery, Fired):
        payload: TaskReminder | ReminderDigest = _reminder(delivery)
        event_id, subject, parents = delivery.reminder_id, delivery.task_id, [delivery.traceparent]
        attrs = {"taskflow.reminder_id": event_id, "taskflow.task_id": subject}
    else:
        payload = _digest(delivery)
        event_id, subject = delivery.digest_id, delivery.user_id
        parents = [item.traceparent for item in delivery.items]
        attrs = {"taskflow.digest_id": event_id, "taskflow.items": str(len(delivery.items))}
    carrier = fire_headers(f"{payload.event_type} send", parents, attrs)
    envelope = Envelope(
        data=payload,
        source=SOURCE,
        subject=subject,
        user_id=delivery.user_id,
        id=event_id,
        time=now,
        traceparent=carrier.get(TRACEPARENT),
        tracestate=carrier.get("tracestate"),
    )
    headers = [(k, v.encode()) for k, v in carrier.items()]
    headers.append(("ce_type", payload.event_type.encode()))
    return KafkaSinkMessage(
        delivery.user_id.encode(), encode(envelope), topic=topic, headers=headers
    )


def delivery_log(delivery: Delivery) -> list[LogEntry]:
    """Metric log rows: lateness of reminders sent on their own, counts of digests and misses."""
    if isinstance(delivery, Fired):
        lateness = (delivery.fired_at - delivery.remind_at).total_seconds()
        return [LogEntry(delivery.reminder_id, "fired", max(lateness, 0.0))]
    rows = [LogEntry(delivery.digest_id, "digest")]
    rows += [LogEntry(i.reminder_id, "missed" if i.missed else "held") for i in delivery.items]
    return rows


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
_transient = retry(
    retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
    stop=stop_after_attempt(5),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)


class _PacedPartition(StatefulSourcePartition[Any, Any]):
    """A Kafka partition polled at most every `interval` unless it is catching up; a
    resumed one stays silent for `hold` first (see `PacedKafkaSource`)."""

    def __init__(
        self,
        inner: StatefulSourcePartition[Any, Any],
        interval: timedelta,
        full: int,
        hold: timedelta = timedelta(0),
    ):
        self._inner, self._interval, self._full = inner, interval, full
        # Bytewax calls next_batch only once next_awake has passed: the hold is just a
        # later first wake-up, the same mechanism as the pacing.
        self._next: datetime | None = datetime.now(UTC) + hold if hold else None

    def next_batch(self) -> list[Any]:
        batch = list(self._inner.next_batch())
        busy = len(batch) >= self._full
        self._next = None if busy else datetime.now(UTC) + self._interval
        return batch

    def next_awake(self) -> datetime | None:
        return self._next

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class PacedKafkaSource(KafkaSource):
    """`KafkaSource` whose partitions are polled in batches every `interval`.

    Bytewax re-activates downstream steps for every non-empty poll; each activation of
    the timer step scans every armed key, so fewer, larger batches keep it cheap.

    After a restart from recovery, partitions hold back for `resume_hold`: Bytewax 0.21
    runs items of the resume epoch eagerly, before that epoch closes and the keys' saved
    state is loaded; a key touched then gets a fresh logic, which the load then replaces,
    dropping what the fresh one held (lost or doubled reminders, seen in the chaos suite).
    Holding past the first epochs (one per snapshot interval) keeps loads first.
    """

    def __init__(
        self,
        interval: timedelta,
        *args: Any,
        resume_hold: timedelta = timedelta(0),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._interval = interval
        self._resume_hold = resume_hold

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
        inner = super().build_part(step_id, for_part, resume_state)
        hold = self._resume_hold if resume_state is not None else timedelta(0)
        return _PacedPartition(inner, self._interval, self._batch_size, hold)


class _StorePartition(StatelessSinkPartition[StoreOp]):
    """Owns a private event loop and asyncpg pool (a pool made elsewhere is loop-bound)."""

    def __init__(self, url: str, log_retention: timedelta) -> None:
        self._loop = asyncio.new_event_loop()
        self._retention = log_retention
        self._writes = 0
        self._pool: Any = self._loop.run_until_complete(self._open(url))

    @_transient
    async def _open(self, url: str) -> Any:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        return pool

    @_transient
    async def _write(self, items: list[StoreOp]) -> None:
        changes = [i for i in items if isinstance(i, ScheduleChange)]
        entries = [i for i in items if isinstance(i, LogEntry)]
        async with self._pool.acquire() as conn:
            await write_batch(conn, changes, entries)
            self._writes += 1
            if self._writes % 1000 == 0:
                await purge_log(conn, datetime.now(UTC), self._retention)

    def write_batch(self, items: list[StoreOp]) -> None:
        self._loop.run_until_complete(self._write(items))

    def close(self) -> None:
        self._loop.run_until_complete(self._pool.close())
        self._loop.close()


class ReadModelSink(DynamicSink[StoreOp]):
    """Writes schedule changes and log rows to the reminder service's database."""

    def __init__(
        self,
        url: str,
        log_retention: timedelta = timedelta(days=7),
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._retention = log_retention
        self._on_start = on_start  # process setup that must not run at import time

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        if self._on_start is not None:
            self._on_start()
        return _StorePartition(self._url, self._retention)


def tune_gc() -> None:
    """GC thresholds for a process holding ~10^5-10^6 armed tasks.

    Full (gen 2) collections over 100k armed tasks paused the worker for up to 0.8 s and
    were the p99 timer lateness (default 700/10/10; 50_000/20/100 still gave 0.4 s gen-0/1
    pauses). These keep young collections small and full ones rare.
    """
    gc.set_threshold(5_000, 20, 1_000)
