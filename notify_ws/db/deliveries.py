"""Delivery rows: one per notification and external channel, claimed with a lease.

A row is the durable promise to deliver: it is written in the notification's transaction,
so the worker can commit its Kafka offset without waiting for any channel.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from uuid_utils.compat import uuid7

PENDING, DEFERRED, DELIVERED, FAILED, SKIPPED, DIGESTED = (
    "pending", "deferred", "delivered", "failed", "skipped", "digested",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    notification_id: uuid.UUID | None
    user_id: str
    channel: str
    status: str
    attempts: int
    digest_of: tuple[uuid.UUID, ...]
    last_error: str | None

    @property
    def covers(self) -> tuple[uuid.UUID, ...]:
        """The notifications this delivery carries (one, or a digest's several)."""
        if self.notification_id is not None:
            return (self.notification_id,)
        return self.digest_of


def _row(r: Any) -> Delivery:
    return Delivery(
        r["id"], r["notification_id"], r["user_id"], r["channel"], r["status"], r["attempts"],
        tuple(r["digest_of"] or ()), r["last_error"],
    )  # fmt: skip


def new_id() -> uuid.UUID:
    return uuid.UUID(str(uuid7()))


async def add(
    conn: Any, rows: Sequence[tuple[uuid.UUID, str, str, str, datetime]], now: datetime
) -> None:
    """Insert (notification_id, user_id, channel, status, next_attempt_at) rows."""
    if not rows:
        return
    await conn.executemany(
        "INSERT INTO deliveries (id, notification_id, user_id, channel, status,"
        " next_attempt_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (notification_id, channel) DO NOTHING",
        [
            (new_id(), nid, user, channel, status, at, now)
            for nid, user, channel, status, at in rows
        ],
    )


async def fold_digests(conn: Any, now: datetime) -> int:
    """Turn due deferred rows into one digest row per (user, channel); returns digests made."""
    groups = await conn.fetch(
        "WITH due AS (UPDATE deliveries SET status = 'digested', updated_at = $1"
        " WHERE id IN (SELECT id FROM deliveries WHERE status = 'deferred'"
        " AND next_attempt_at <= $1 FOR UPDATE SKIP LOCKED)"
        " RETURNING user_id, channel, notification_id)"
        " SELECT user_id, channel, array_agg(notification_id ORDER BY notification_id) AS ids"
        " FROM due GROUP BY user_id, channel",
        now,
    )
    await conn.executemany(
        "INSERT INTO deliveries (id, notification_id, user_id, channel, status, next_attempt_at,"
        " digest_of, updated_at) VALUES ($1, NULL, $2, $3, 'pending', $4, $5, $4)",
        [(new_id(), g["user_id"], g["channel"], now, g["ids"]) for g in groups],
    )
    return len(groups)


async def next_due(conn: Any) -> datetime | None:
    """When the earliest pending or deferred row falls due (the `deliveries_due` index)."""
    due: datetime | None = await conn.fetchval(
        "SELECT min(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'deferred')"
    )
    return due


async def claim(conn: Any, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
    """Take due pending rows for `lease`; another process skips them meanwhile."""
    rows = await conn.fetch(
        "UPDATE deliveries SET next_attempt_at = $2 WHERE id IN (SELECT id FROM deliveries"
        " WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at"
        " LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *",
        now,
        now + lease,
        limit,
    )
    return [_row(r) for r in rows]


async def finish(
    conn: Any, delivery_id: uuid.UUID, status: str, attempts: int, error: str | None,
    now: datetime,
) -> bool:  # fmt: skip
    """Record a final outcome; `reported` turns true once the outcome event is published.
    False when the row is gone (its user was erased meanwhile): nothing to report."""
    done = await conn.execute(
        "UPDATE deliveries SET status = $2, attempts = $3, last_error = $4, updated_at = $5,"
        " reported = false WHERE id = $1",
        delivery_id, status, attempts, error, now,
    )  # fmt: skip
    return bool(done != "UPDATE 0")


async def postpone(
    conn: Any, delivery_id: uuid.UUID, attempts: int, error: str | None, at: datetime,
    now: datetime,
) -> None:  # fmt: skip
    await conn.execute(
        "UPDATE deliveries SET attempts = $2, last_error = $3, next_attempt_at = $4,"
        " updated_at = $5 WHERE id = $1",
        delivery_id, attempts, error, at, now,
    )  # fmt: skip


async def mark_reported(conn: Any, delivery_id: uuid.UUID) -> None:
    await conn.execute("UPDATE deliveries SET reported = true WHERE id = $1", delivery_id)


async def unreported(conn: Any, before: datetime, limit: int) -> list[Delivery]:
    rows = await conn.fetch(
        "SELECT * FROM deliveries WHERE NOT reported AND updated_at < $1"
        " ORDER BY updated_at LIMIT $2",
        before,
        limit,
    )
    return [_row(r) for r in rows]


async def for_notification(conn: Any, notification_id: uuid.UUID) -> list[Delivery]:
    rows = await conn.fetch(
        "SELECT * FROM deliveries WHERE notification_id = $1 OR $1 = ANY(digest_of)"
        " ORDER BY channel",
        notification_id,
    )
    return [_row(r) for r in rows]
