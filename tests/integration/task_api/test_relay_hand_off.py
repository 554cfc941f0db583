"""The hand-off against the real database and broker: a committed event goes straight to
Kafka and costs the relay one statement (its mark); a claim racing the hand-off still sends
each row once; concurrent changes of one task reach Kafka in version order."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as Client

from events.codec import decode
from events.errors import PublishError
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from task_api.db.relay_store import PRUNE_KEYS_SQL, PendingEvent
from task_api.db.written import Written, WrittenEvent
from task_api.metrics import TaskMetrics
from task_api.relay import OutboxRelay
from tests.integration.task_api.conftest import create, migrated_task_database
from tests.kafka_helpers import TopicReader

pytestmark = pytest.mark.integration


@pytest.fixture
async def relay_db(create_database: Callable[[str], Awaitable[str]]) -> str:
    return await migrated_task_database(create_database, "hand_off")


@pytest.fixture
async def db(relay_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(relay_db)
    yield conn
    await conn.close()


@pytest.fixture
async def relay(relay_db: str, kafka_settings: KafkaSettings) -> AsyncIterator[OutboxRelay]:
    relay = OutboxRelay(
        lambda: AsyncProducer(kafka_settings.producer(**{"linger.ms": 0})),
        relay_db,
        TaskMetrics.create(CollectorRegistry()),
        poll_interval=timedelta(minutes=5),  # no safety-net claim inside a test
    )
    yield relay
    relay.stop()


async def write_event(conn: asyncpg.Connection, topic: str, key: str) -> PendingEvent:
    """Commit one outbox row, as a writer would, and return it as the writer records it."""
    event_id, created_at = uuid.uuid4(), datetime.now(UTC)
    payload = orjson.dumps({"key": key})
    row_id = await conn.fetchval(
        """INSERT INTO outbox (event_id, topic, key, event_type, payload, headers, created_at)
           VALUES ($1, $2, $3, 'task.created', $4, '[]'::jsonb, $5) RETURNING id""",
        event_id,
        topic,
        key,
        payload,
        created_at,
    )
    return PendingEvent(row_id, event_id, topic, key, "task.created", payload, [], created_at)


async def poll_until(check: Callable[[], Awaitable[bool]], deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while not await check():
        assert time.monotonic() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.02)


def first_round_over(
    relay: OutboxRelay, conn: asyncpg.Connection, sent: list[str]
) -> Callable[[], Awaitable[bool]]:
    """Whether the relay's first round is over and it waits: the claim at start, the backlog
    gauge and the prune (its last statement) are done, and the claim's turn has passed, so
    a hand-off goes straight to the producer. Waiting for the claim's statements alone raced
    both: a CI run saw the hand-off land inside the claim's turn and be claimed."""

    async def over() -> bool:
        pruned = any(query.startswith(PRUNE_KEYS_SQL) for query in sent)
        return pruned and not conn.is_in_transaction() and relay.idle

    return over


async def test_a_handed_off_event_is_published_and_costs_the_relay_one_statement(
    relay: OutboxRelay,
    db: asyncpg.Connection,
    kafka_settings: KafkaSettings,
    tasks_topic: TopicReader,
) -> None:
    sent: list[str] = []
    conn = await relay.connection()
    # asyncpg looks up each array type once per connection: not part of the protocol.
    await conn.fetchval("SELECT '{}'::bigint[], '{}'::timestamptz[]")
    conn.add_query_logger(lambda record: sent.append(record.query))
    running = asyncio.create_task(relay.run())
    try:
        # The loop's first claim, at start (BEGIN, claim, COMMIT), finds nothing.
        await poll_until(first_round_over(relay, conn, sent))
        sent.clear()
        event = await write_event(db, kafka_settings.topics.tasks, "task-a")
        relay.hand_off(Written(events=[WrittenEvent(event)]))

        async def marked() -> bool:
            published = await db.fetchval("SELECT published_at FROM outbox WHERE id = $1", event.id)
            return published is not None

        await poll_until(marked)
    finally:
        relay.stop()
        await running
    assert len(sent) == 1 and sent[0].lstrip().startswith("UPDATE outbox"), sent
    messages = await tasks_topic.wait_count(1)
    assert [m.key() for m in await tasks_topic.settle()] == [b"task-a"]
    assert messages[0].value() == event.payload


async def test_a_claim_racing_the_hand_off_sends_each_row_once(
    relay: OutboxRelay,
    db: asyncpg.Connection,
    kafka_settings: KafkaSettings,
    tasks_topic: TopicReader,
) -> None:
    """Whichever comes first, the claim or the hand-off, the other leaves the row alone:
    hand the row off just before a claim, and after 0 to 11 turns of the loop into one."""
    topic = kafka_settings.topics.tasks
    rows: list[PendingEvent] = []
    for turns in range(-1, 12):
        event = await write_event(db, topic, f"task-{len(rows)}")
        rows.append(event)
        if turns < 0:
            relay.hand_off(Written(events=[WrittenEvent(event)]))
        claim = asyncio.create_task(relay.publish_batch())
        for _ in range(turns):
            await asyncio.sleep(0)
        if turns >= 0:
            relay.hand_off(Written(events=[WrittenEvent(event)]))
        await claim
    # Whatever the claim left to the hand-off is marked once its delivery is confirmed.
    await relay._finish_hand_offs()  # noqa: SLF001 - what the loop does on its way out
    await relay._close()  # noqa: SLF001
    await tasks_topic.wait_count(len(rows))
    keys = sorted(m.key() or b"" for m in await tasks_topic.settle())
    assert keys == sorted(r.key.encode() for r in rows)
    unpublished = await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    assert unpublished == 0


async def test_concurrent_changes_of_one_task_reach_kafka_once_each_in_version_order(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    task = await create(client, auth, title="v1")
    path = f"/api/v1/tasks/{task['id']}"
    # Twenty writers queue on the task's row lock; each commit hands its event off while
    # the one before may still be on its way.
    replies = await asyncio.gather(
        *(client.patch(path, json={"title": f"v{n}"}, headers=auth) for n in range(2, 22))
    )
    assert all(reply.status_code == 200 for reply in replies)
    await tasks_topic.wait_count(21)
    messages = await tasks_topic.settle()
    versions = [decode(m.value()).data.version for m in messages]  # type: ignore[attr-defined]
    assert versions == list(range(1, 22))


async def test_a_crash_between_delivery_and_mark_leaves_the_row_to_the_next_claim(
    relay: OutboxRelay,
    relay_db: str,
    db: asyncpg.Connection,
    kafka_settings: KafkaSettings,
    tasks_topic: TopicReader,
) -> None:
    event = await write_event(db, kafka_settings.topics.tasks, "task-crash")
    relay.hand_off(Written(events=[WrittenEvent(event)]))  # no loop runs: it never marks
    await tasks_topic.wait_count(1)
    await relay._close()  # noqa: SLF001 - the process dies here, its marks unwritten
    assert await db.fetchval("SELECT published_at FROM outbox WHERE id = $1", event.id) is None

    restarted = OutboxRelay(
        lambda: AsyncProducer(kafka_settings.producer()),
        relay_db,
        TaskMetrics.create(CollectorRegistry()),
    )
    try:
        assert await restarted.publish_batch() == 1
    finally:
        await restarted._close()  # noqa: SLF001
    assert await db.fetchval("SELECT published_at FROM outbox WHERE id = $1", event.id)
    messages = await tasks_topic.wait_count(2)
    # The same event twice: consumers apply an event id once.
    assert [m.value() for m in await tasks_topic.settle()] == [event.payload, event.payload]
    assert len(messages) == 2


class FirstMessageHeld:
    """A real producer that never reports on its first message: a client wedged with one
    hand-off in it. Replacing it (`abandon`) fails that message, as the real one does."""

    fatal_error = None

    def __init__(self, real: AsyncProducer) -> None:
        self.real = real
        self.held: asyncio.Future[object] | None = None

    def produce(
        self, topic: str, value: bytes, key: str, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[object]:
        if self.held is None:
            self.held = asyncio.get_running_loop().create_future()
            return self.held
        return self.real.produce(topic, value, key, headers)  # type: ignore[return-value]

    def abandon(self) -> None:
        if self.held is not None and not self.held.done():
            self.held.set_exception(PublishError("producer abandoned"))
        self.real.abandon()

    async def close(self) -> None:
        await self.real.close()


async def test_the_claim_waits_for_an_unreported_hand_off_before_the_next_event_of_its_key(
    relay_db: str,
    db: asyncpg.Connection,
    kafka_settings: KafkaSettings,
    tasks_topic: TopicReader,
) -> None:
    """A claim that sent event 2 while event 1 (handed off) could still fail would let the
    retry of 1 land after 2: with the broker down past the message timeout, the hand-off
    timed out and the claimed events behind it went through when the broker came back."""
    clients: list[object] = []

    def producers() -> AsyncProducer:
        real = AsyncProducer(kafka_settings.producer(**{"linger.ms": 0}))
        client = FirstMessageHeld(real) if not clients else real
        clients.append(client)
        return client  # type: ignore[return-value]

    relay = OutboxRelay(
        producers,
        relay_db,
        TaskMetrics.create(CollectorRegistry()),
        poll_interval=timedelta(minutes=5),
        delivery_timeout=timedelta(seconds=2),
    )
    topic = kafka_settings.topics.tasks
    first = await write_event(db, topic, "task-held")
    relay.hand_off(Written(events=[WrittenEvent(first)]))  # held: no report comes
    second = await write_event(db, topic, "task-held")
    try:
        # The claim waits the delivery timeout out, replaces the wedged client (failing
        # the hand-off) and sends both rows, the older first.
        assert await relay.publish_batch() == 2
    finally:
        await relay._close()  # noqa: SLF001
    assert len(clients) == 2
    await tasks_topic.wait_count(2)
    assert [m.value() for m in await tasks_topic.settle()] == [first.payload, second.payload]
    unpublished = await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    assert unpublished == 0


async def test_confirmations_within_the_mark_delay_share_one_statement(
    relay_db: str, db: asyncpg.Connection, kafka_settings: KafkaSettings
) -> None:
    """At one change at a time each hand-off is confirmed alone; its mark waits for the
    delay so that one UPDATE marks them all (no claim runs: the safety-net poll is far)."""
    relay = OutboxRelay(
        lambda: AsyncProducer(kafka_settings.producer(**{"linger.ms": 0})),
        relay_db,
        TaskMetrics.create(CollectorRegistry()),
        poll_interval=timedelta(minutes=5),
        mark_delay=timedelta(seconds=5),
    )
    sent: list[str] = []
    conn = await relay.connection()
    await conn.fetchval("SELECT '{}'::bigint[], '{}'::timestamptz[]")  # array types, once
    running = asyncio.create_task(relay.run())
    try:
        # The loop's first claim, at start (BEGIN, claim, COMMIT), finds nothing.
        conn.add_query_logger(lambda record: sent.append(record.query))

        await poll_until(first_round_over(relay, conn, sent))
        sent.clear()
        for n in range(3):
            event = await write_event(db, kafka_settings.topics.tasks, f"task-mark-{n}")
            relay.hand_off(Written(events=[WrittenEvent(event)]))

            async def confirmed(count: int = n + 1) -> bool:
                return len(relay._confirmed) == count  # noqa: SLF001 - confirmed, unmarked

            await poll_until(confirmed)
        unmarked = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        assert await db.fetchval(unmarked) == 3

        async def marked() -> bool:
            return await db.fetchval(unmarked) == 0

        await poll_until(marked)
    finally:
        relay.stop()
        await running
    # (The backlog gauge may have been read meanwhile: every few seconds, not per event.)
    marks = [query for query in sent if query.lstrip().startswith("UPDATE outbox")]
    assert len(marks) == 1, sent
