"""The relay's database protocol: a batch is three round trips and leaves no transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry

from events.errors import PublishError
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from task_api.metrics import TaskMetrics
from task_api.relay import OutboxRelay, RelayError
from tests.integration.task_api.conftest import migrated_task_database
from tests.kafka_helpers import TopicReader

pytestmark = pytest.mark.integration


class RefusingProducer:
    """A producer whose every delivery fails, as on a broker that refuses the topic."""

    fatal_error = None

    def produce(self, *_: object, **__: object) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_exception(PublishError("refused"))
        return future

    def abandon(self) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
async def relay_db(create_database: Callable[[str], Awaitable[str]]) -> str:
    """A task database of its own: the relay claims every unpublished row it holds."""
    return await migrated_task_database(create_database, "relay_trips")


@pytest.fixture
async def db(relay_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(relay_db)
    yield conn
    await conn.close()


async def add_events(conn: asyncpg.Connection, topic: str, count: int) -> None:
    for n in range(count):
        await conn.execute(
            """INSERT INTO outbox (event_id, topic, key, event_type, payload, headers, created_at)
               VALUES ($1, $2, $3, 'task.created', $4, '[]'::jsonb, $5)""",
            uuid.uuid4(),
            topic,
            f"task-{n}",
            orjson.dumps({"n": n}),
            datetime.now(UTC),
        )


def make_relay(url: str, producer: Callable[[], object]) -> OutboxRelay:
    return OutboxRelay(producer, url, TaskMetrics.create(CollectorRegistry()))  # type: ignore[arg-type]


async def test_a_batch_is_three_round_trips_and_marks_every_row(
    relay_db: str, db: asyncpg.Connection, kafka_settings: KafkaSettings, tasks_topic: TopicReader
) -> None:
    topic = kafka_settings.topics.tasks
    await add_events(db, topic, 3)
    relay = make_relay(relay_db, lambda: AsyncProducer(kafka_settings.producer()))
    sent: list[str] = []
    conn = await relay.connection()
    conn.add_query_logger(lambda record: sent.append(record.query))
    try:
        assert await relay.publish_batch() == 3
        assert not conn.is_in_transaction()
    finally:
        await relay._close()  # noqa: SLF001 - the test owns this relay
    assert len(sent) == 3, sent
    assert sent[0] == "BEGIN"
    assert sent[2].rstrip().endswith("COMMIT")
    unpublished = await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    assert unpublished == 0
    delivered = await tasks_topic.wait_count(3)
    assert sorted(m.key() or b"" for m in delivered) == [b"task-0", b"task-1", b"task-2"]


async def test_an_empty_claim_commits_and_publishes_nothing(relay_db: str) -> None:
    relay = make_relay(relay_db, RefusingProducer)
    try:
        assert await relay.publish_batch() == 0
        assert not (await relay.connection()).is_in_transaction()
    finally:
        await relay._close()  # noqa: SLF001


async def test_undelivered_rows_stay_unpublished_and_the_transaction_ends(
    relay_db: str, db: asyncpg.Connection
) -> None:
    await add_events(db, "taskflow.tasks", 2)
    relay = make_relay(relay_db, RefusingProducer)
    try:
        with pytest.raises(RelayError, match="2 of 2 events not delivered"):
            await relay.publish_batch()
        conn = await relay.connection()
        assert not conn.is_in_transaction()
        # The claim's locks went with the transaction: another claimer sees both rows.
        other = await db.fetch(
            "SELECT id FROM outbox WHERE published_at IS NULL FOR UPDATE SKIP LOCKED"
        )
        assert len(other) == 2
    finally:
        await relay._close()  # noqa: SLF001
