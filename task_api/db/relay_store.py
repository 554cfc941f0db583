"""The relay's side of the outbox: claim, mark, measure and prune, on its own connection.

The relay keeps a dedicated asyncpg connection (not the API's Tortoise pool) because it
runs on its own event loop, away from request handling; see `task_api.relay`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

# Rows are claimed oldest first and locked; a row is held back while an older unpublished
# row of the same key is locked by another relay, so per-task order survives two relays.
# (Rows this relay handed off are skipped by the caller, not here: with an exclusion list
# as a parameter, PostgreSQL's generic plan for the prepared claim took ~180 ms instead of
# ~4 ms per claim once the table held tens of thousands of rows.)
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
# Sent as one simple query with the COMMIT (see `mark_and_commit`): literals, not parameters.
MARK_AND_COMMIT_SQL = (
    "UPDATE outbox SET published_at = '{at}'::timestamptz WHERE id = ANY('{{{ids}}}'::bigint[]);"
    " COMMIT"
)
MARK_EACH_SQL = """
UPDATE outbox SET published_at = marks.at
FROM unnest($1::bigint[], $2::timestamptz[]) AS marks (id, at)
WHERE outbox.id = marks.id
"""
BACKLOG_SQL = """
SELECT count(*) AS pending, min(created_at) AS oldest FROM outbox WHERE published_at IS NULL
"""
PRUNE_OUTBOX_SQL = "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1"
PRUNE_KEYS_SQL = "DELETE FROM idempotency_keys WHERE created_at < $1"


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


def header_pairs(value: Any) -> list[tuple[str, bytes]]:
    pairs = orjson.loads(value) if isinstance(value, str | bytes) else value
    return [(name, text.encode()) for name, text in pairs]


async def begin(conn: asyncpg.Connection) -> None:
    """Open the claim's transaction by hand: `mark_and_commit` ends it."""
    await conn.execute("BEGIN")


async def claim(conn: asyncpg.Connection, limit: int) -> list[PendingEvent]:
    """Lock the next publishable rows (the caller's transaction holds the locks)."""
    rows = await conn.fetch(CLAIM_SQL, limit)
    return [
        PendingEvent(
            id=row["id"],
            event_id=row["event_id"],
            topic=row["topic"],
            key=row["key"],
            event_type=row["event_type"],
            payload=bytes(row["payload"]),
            headers=header_pairs(row["headers"]),
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def mark_and_commit(conn: asyncpg.Connection, ids: list[int], at: datetime) -> None:
    """Mark `ids` published at `at` and commit, in one round trip.

    A parameterised statement cannot carry a COMMIT, so this goes as a simple query: at
    one batch per change (every rate below a few hundred a second) it saves one of the
    batch's round trips, each a wake-up of this process and of PostgreSQL. The values
    are integers from the claim and a timestamp formatted here, never client text.
    """
    if not ids:
        await conn.execute("COMMIT")
        return
    ids_text = ",".join(str(int(row_id)) for row_id in ids)
    await conn.execute(MARK_AND_COMMIT_SQL.format(at=at.isoformat(), ids=ids_text))


async def mark_each(conn: asyncpg.Connection, published: list[tuple[int, datetime]]) -> None:
    """Mark rows published, each at its own time, in one autocommit statement."""
    ids, times = zip(*published, strict=True) if published else ((), ())
    await conn.execute(MARK_EACH_SQL, list(ids), list(times))


async def rollback(conn: asyncpg.Connection) -> None:
    """End a claim that will not be marked (its rows stay unpublished for the next try)."""
    if not conn.is_closed() and conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def backlog(conn: asyncpg.Connection, now: datetime) -> tuple[int, float]:
    """Unpublished rows, and the age in seconds of the oldest (0 when none)."""
    row = await conn.fetchrow(BACKLOG_SQL)
    oldest = row["oldest"]
    return int(row["pending"]), (now - oldest).total_seconds() if oldest else 0.0


async def prune(
    conn: asyncpg.Connection, now: datetime, retention: timedelta, key_ttl: timedelta
) -> tuple[int, int]:
    """Delete published rows past `retention` and idempotency keys past `key_ttl`."""
    rows = await conn.execute(PRUNE_OUTBOX_SQL, now - retention)
    keys = await conn.execute(PRUNE_KEYS_SQL, now - key_ttl)
    return _count(rows), _count(keys)


def _count(status: str) -> int:
    """Rows affected, from a command tag such as "DELETE 12"."""
    return int(status.rsplit(" ", 1)[-1])
