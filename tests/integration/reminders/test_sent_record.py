"""The record of sent reminders in the real reminder database, and the reminder flow's Kafka
sink writing it before it produces (pipelines/reminders/sent.py)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from bytewax.connectors.kafka import KafkaSinkMessage

from deploy.broker import LocalBroker, ensure_topics
from events.kafka import KafkaSettings
from pipelines.kafka_sink import DeliveredKafkaSink
from pipelines.reminders.sent import Outgoing, RecordingKafkaSink, sent_index
from reminders.db.store import (
    ErasedUser,
    SentDelivery,
    last_sent,
    purge_sent,
    record_sent,
    write_batch,
)
from tests.integration.reminders.harness import read_distinct

pytestmark = pytest.mark.integration


def sent(event_id: str, user: str, *reminder_ids: str, topic: str = "t.reminders") -> SentDelivery:
    return SentDelivery(
        event_id=event_id,
        user_id=user,
        reminder_ids=reminder_ids,
        topic=topic,
        key=user.encode(),
        value=f"message {event_id}".encode(),
        headers=(("ce_type", b"reminder.digest"), ("raw", bytes(range(256)))),
    )


async def test_records_round_trip_and_a_second_record_of_a_message_changes_nothing(
    db: asyncpg.Connection,
) -> None:
    first, second = sent("d1", "ann", "r1", "r2"), sent("r3", "ann", "r3")
    await record_sent(db, [first])
    await record_sent(db, [second, replace(first, value=b"re-encoded")])
    assert await last_sent(db, timedelta(minutes=10)) == [first, second]


async def test_only_records_near_the_newest_are_read(db: asyncpg.Connection) -> None:
    await record_sent(db, [sent("old", "ann", "r1"), sent("new", "ann", "r2")])
    # The newest record counts, not the clock: a flow down for a day still finds its last.
    await db.execute(
        "UPDATE sent_delivery SET recorded_at = now() - interval '1 day'"
        " - CASE event_id WHEN 'old' THEN interval '11 minutes' ELSE interval '0' END"
    )
    assert [r.event_id for r in await last_sent(db, timedelta(minutes=10))] == ["new"]
    assert await purge_sent(db, datetime.now(UTC), timedelta(hours=1)) == 2
    assert await last_sent(db, timedelta(minutes=10)) == []


async def test_an_erasure_deletes_the_users_records(db: asyncpg.Connection) -> None:
    await record_sent(db, [sent("d1", "gone", "r1"), sent("d2", "stays", "r2")])
    erased = ErasedUser("gone", str(uuid.uuid4()), datetime.now(UTC))
    await write_batch(db, [], [], [erased])
    assert [r.event_id for r in await last_sent(db, timedelta(minutes=10))] == ["d2"]


def test_the_index_over_the_database_resends_a_recorded_message_once(
    reminders_db: str,
) -> None:
    async def seed() -> None:
        conn = await asyncpg.connect(reminders_db)
        try:
            await conn.execute("TRUNCATE sent_delivery")
            await record_sent(conn, [sent("d1", "ann", "r1", "r2")])
        finally:
            await conn.close()

    asyncio.run(seed())
    index = sent_index(reminders_db)
    [resend] = index.replayed("r2") or []
    assert resend.sent == sent("d1", "ann", "r1", "r2")
    assert index.replayed("r1") == []
    assert index.replayed("r9") is None


def test_the_sink_records_a_message_before_the_broker_has_it(
    own_broker: LocalBroker, reminders_db: str
) -> None:
    kafka = KafkaSettings(bootstrap=own_broker.bootstrap, partitions=1)
    topic = f"sent-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [topic])
    config = kafka.producer(**{"linger.ms": 0, "message.timeout.ms": 1500})
    part = RecordingKafkaSink(DeliveredKafkaSink(config, max_backoff=0.5), reminders_db).build(
        "out", 0, 1
    )
    record = sent(f"d-{uuid.uuid4().hex}", "ann", "r1", "r2", topic=topic)
    first = KafkaSinkMessage(record.key, record.value, topic=topic, headers=list(record.headers))
    again = KafkaSinkMessage(b"bob", b"resent", topic=topic)

    own_broker.freeze()
    writer = threading.Thread(
        target=part.write_batch, args=([Outgoing(first, record), Outgoing(again)],)
    )
    writer.start()
    try:
        recorded = _poll_records(reminders_db, record.event_id)
        assert writer.is_alive(), "the batch was produced while the broker was frozen"
    finally:
        own_broker.thaw()
        writer.join(60)
    assert not writer.is_alive()
    part.close()
    assert recorded == [record]
    assert set(read_distinct(own_broker.bootstrap, topic, expected=2)) == {b"resent", record.value}
    # Only the first send is recorded; a resend was recorded with its first send.
    assert [r.event_id for r in _records(reminders_db) if r.topic == topic] == [record.event_id]


def _records(url: str) -> list[SentDelivery]:
    async def read() -> list[SentDelivery]:
        conn = await asyncpg.connect(url)
        try:
            return await last_sent(conn, timedelta(days=1))
        finally:
            await conn.close()

    return asyncio.run(read())


def _poll_records(url: str, event_id: str, timeout: float = 20.0) -> list[SentDelivery]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in _records(url) if r.event_id == event_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
