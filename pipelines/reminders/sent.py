"""Reminders sent once across a crash: every reminder or digest is recorded before it is
produced, and a reminder that fires again in the replay after a restart goes out as its
recorded message.

Bytewax resumes a crashed flow from its last snapshot, so the reminders fired since then
fire again. A reminder sent on its own keeps its id (the reminder id) and collapses at the
consumers. But digest windows run on fire time, and right after a restart the digest step
sends reminders on their own for a while (`UserDigestLogic`), so a replay could group the
same reminders into a digest of another make-up, under another id: the user got them
twice (seen in the chaos suite). Now the digest step asks `SentIndex` first; a reminder
recorded before this run is sent again as the recorded message (same event id, same items),
once, and stays out of any new window or digest.

The record is written before the message is produced, in the Kafka sink itself, so no
record stands for a message that is lost: a crash between the two leaves a record whose
message the replay sends. Records are read once per run, at the first reminder; only the
ones close to the newest can be replayed (`REPLAY_SPAN`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from pipelines.kafka_sink import DeliveredKafkaSink, SinkMessage
from pipelines.reminders.store import PURGE_EVERY, transient
from reminders.domain.digest import Delivery
from reminders.domain.timers import Fired
from reminders.ports import ReadModel, SentDelivery, open_read_model
from runtime.flow import new_io_loop

# Records within this span of the newest one are read at restart. A replay covers the last
# snapshot interval before the crash (`-s 1`: a second; the span must exceed it); a sink
# stuck on an unreachable broker records nothing new meanwhile, so the span counts from
# the newest record, not from now.
REPLAY_SPAN = timedelta(minutes=2)
# What a replay fires again fires right after the restart (those timers were due before
# the crash), so the index is dropped this long after it was read: its records (up to a
# REPLAY_SPAN of messages) are not held for the rest of the run.
FORGET_AFTER = timedelta(minutes=2)
# Records are kept this long (each holds a whole message: ~0.5 KiB). A run reads them at
# its first reminder, before it records (and so purges) anything, so a flow that was down
# for longer still finds the records of its last minutes.
SENT_RETENTION = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Resend:
    """A message recorded (and maybe produced) before this run, to be produced again."""

    sent: SentDelivery


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the Kafka sink; `record` is set on a reminder's or digest's first send."""

    message: SinkMessage
    record: SentDelivery | None = None


class SentIndex:
    """The reminders recorded as sent before this run, by reminder id, read on first use
    and forgotten `forget_after` later."""

    def __init__(
        self,
        load: Callable[[], Iterable[SentDelivery]],
        forget_after: timedelta = FORGET_AFTER,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._forget_after = forget_after.total_seconds()
        self._monotonic = monotonic
        self._lock = threading.Lock()  # Bytewax workers are threads of one process
        self._by_reminder: dict[str, SentDelivery] | None = None
        self._forget_at = 0.0
        self._resent: set[str] = set()

    def replayed(self, reminder_id: str) -> list[Resend] | None:
        """None if `reminder_id` was not sent before this run; else what to send for it now:
        its recorded message the first time any of that message's reminders asks, then
        nothing."""
        with self._lock:
            if self._by_reminder is None:
                self._by_reminder = {}
                for record in self._load():  # oldest first: a reminder keeps its first one
                    for rid in record.reminder_ids:
                        self._by_reminder.setdefault(rid, record)
                self._forget_at = self._monotonic() + self._forget_after
            elif self._by_reminder and self._monotonic() >= self._forget_at:
                self._by_reminder.clear()  # the replay is long over
                self._resent.clear()
            sent = self._by_reminder.get(reminder_id)
            if sent is None:
                return None
            if sent.event_id in self._resent:
                return []
            self._resent.add(sent.event_id)
            return [Resend(sent)]


NOTHING_SENT = SentIndex(tuple)  # flows without a database (tests)


def recorded(message: SinkMessage, delivery: Delivery) -> Outgoing:
    """`message`, the first send of `delivery`, with the record written before it goes out."""
    reminder_ids: tuple[str, ...]
    if isinstance(delivery, Fired):
        event_id, reminder_ids = delivery.reminder_id, (delivery.reminder_id,)
    else:
        event_id = delivery.digest_id
        reminder_ids = tuple(item.reminder_id for item in delivery.items)
    assert message.topic is not None and isinstance(message.value, bytes)  # noqa: S101
    record = SentDelivery(
        event_id=event_id,
        user_id=delivery.user_id,
        reminder_ids=reminder_ids,
        topic=message.topic,
        key=message.key,
        value=message.value,
        headers=tuple((name, bytes(value)) for name, value in message.headers),
    )
    return Outgoing(message, record)


def resent(resend: Resend) -> Outgoing:
    """The recorded message again, byte for byte (it is recorded already)."""
    sent = resend.sent
    message: SinkMessage = KafkaSinkMessage(
        sent.key, sent.value, topic=sent.topic, headers=list(sent.headers)
    )
    return Outgoing(message)


def sent_index(url: str) -> SentIndex:
    """The index over the reminder database at `url` (connects on first use)."""

    def load() -> list[SentDelivery]:
        loop = new_io_loop()
        try:
            return loop.run_until_complete(_load_last_sent(url))
        finally:
            loop.close()

    return SentIndex(load)


@transient
async def _load_last_sent(url: str) -> list[SentDelivery]:
    model = await open_read_model(url)
    try:
        return await model.last_sent(REPLAY_SPAN)
    finally:
        await model.close()


class RecordingKafkaSink(DynamicSink[Outgoing]):
    """Records each first send in the reminder database, then produces the batch through
    `kafka` (which returns only once the broker acknowledged every message)."""

    def __init__(
        self, kafka: DeliveredKafkaSink, url: str, retention: timedelta = SENT_RETENTION
    ) -> None:
        self._kafka = kafka
        self._url = url
        self._retention = retention

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RecordingPartition:
        kafka = self._kafka.build(step_id, worker_index, worker_count)
        return _RecordingPartition(kafka, self._url, self._retention)


class _RecordingPartition(StatelessSinkPartition[Outgoing]):
    def __init__(
        self, kafka: StatelessSinkPartition[SinkMessage], url: str, retention: timedelta
    ) -> None:
        self._kafka = kafka
        self._retention = retention
        self._writes = 0
        self._loop = new_io_loop()
        self._model: ReadModel = self._loop.run_until_complete(transient(open_read_model)(url))

    def write_batch(self, items: list[Outgoing]) -> None:
        records = [item.record for item in items if item.record is not None]
        if records:
            self._loop.run_until_complete(self._record(records))
        self._kafka.write_batch([item.message for item in items])

    @transient
    async def _record(self, records: list[SentDelivery]) -> None:
        await self._model.record_sent(records)
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            await self._model.purge_sent(datetime.now(UTC), self._retention)

    def close(self) -> None:
        self._kafka.close()
        self._loop.run_until_complete(self._model.close())
        self._loop.close()
