"""The transactional outbox: enqueue in the change's transaction, claim and mark for the relay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opentelemetry import propagate
from tortoise.backends.base.client import BaseDBAsyncClient

from events.codec import Envelope, encode
from task_api.db.models import OutboxEvent

NOTIFY_CHANNEL = "taskflow_outbox"

# Rows are claimed oldest first and locked; a row is held back while an older unpublished
# row of the same key is locked by another relay, so per-task order survives two relays.
CLAIM_SQL = """
WITH claimed AS (
    SELECT id, key FROM outbox
    WHERE published_at IS NULL
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
SELECT o.id, o.event_id, o.topic, o.key, o.event_type, o.payload, o.headers, o.created_at
FROM outbox o JOIN claimed c ON c.id = o.id
WHERE NOT EXISTS (
    SELECT 1 FROM outbox older
    WHERE older.key = c.key AND older.published_at IS NULL AND older.id < c.id
      AND older.id NOT IN (SELECT id FROM claimed)
)
ORDER BY o.id
"""
MARK_SQL = "UPDATE outbox SET published_at = $1 WHERE id = ANY($2::bigint[])"
BACKLOG_SQL = """
SELECT count(*) AS pending, min(created_at) AS oldest FROM outbox WHERE published_at IS NULL
"""
PRUNE_SQL = "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1"


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: int
    event_id: uuid.UUID
    topic: str
    key: str
    event_type: str
    payload: bytes
    headers: list[tuple[str, bytes]]
    created_at: datetime


def trace_headers(envelope: Envelope[Any]) -> list[list[str]]:
    """Kafka headers for an event: W3C trace context of the current span and `ce_type`."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers = [[name, value] for name, value in carrier.items()]
    headers.append(["ce_type", envelope.type])
    return headers


async def enqueue(conn: BaseDBAsyncClient, topic: str, key: str, envelope: Envelope[Any]) -> None:
    """Write the event in the caller's transaction; it is published after commit."""
    await OutboxEvent.create(
        using_db=conn,
        event_id=uuid.UUID(envelope.id),
        topic=topic,
        key=key,
        event_type=envelope.type,
        payload=encode(envelope),
        headers=trace_headers(envelope),
        created_at=datetime.now(UTC),
    )


async def notify_relays(conn: BaseDBAsyncClient) -> None:
    """Wake relays in other processes when this transaction commits."""
    await conn.execute_query_dict("SELECT pg_notify($1, '')", [NOTIFY_CHANNEL])


async def claim(conn: BaseDBAsyncClient, limit: int) -> list[PendingEvent]:
    """Lock the next publishable rows (the caller's transaction holds the locks)."""
    _, rows = await conn.execute_query(CLAIM_SQL, [limit])
    return [
        PendingEvent(
            id=row["id"],
            event_id=row["event_id"],
            topic=row["topic"],
            key=row["key"],
            event_type=row["event_type"],
            payload=bytes(row["payload"]),
            headers=[(name, value.encode()) for name, value in _json_list(row["headers"])],
            created_at=row["created_at"],
        )
        for row in rows
    ]


def _json_list(value: Any) -> list[list[str]]:
    return orjson.loads(value) if isinstance(value, str | bytes) else list(value)


async def mark_published(conn: BaseDBAsyncClient, ids: list[int], at: datetime) -> None:
    if ids:
        await conn.execute_query(MARK_SQL, [at, ids])


async def backlog(conn: BaseDBAsyncClient, now: datetime) -> tuple[int, float]:
    """Unpublished rows, and the age in seconds of the oldest (0 when none)."""
    _, rows = await conn.execute_query(BACKLOG_SQL)
    oldest = rows[0]["oldest"]
    return int(rows[0]["pending"]), (now - oldest).total_seconds() if oldest else 0.0


async def prune(conn: BaseDBAsyncClient, retention: timedelta, now: datetime) -> int:
    """Delete rows published longer ago than `retention`; returns how many."""
    count, _ = await conn.execute_query(PRUNE_SQL, [now - retention])
    return int(count)
