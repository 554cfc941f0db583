"""The read model: upcoming reminders per task, plus the fired/DLQ log behind /metrics,
and the erased users (their rows deleted, none written again).

Every write is idempotent: a task's rows are replaced as a whole (the dataflow sends a
task's complete pending set on each change, in order), and log rows are keyed by the id of
what they record, so Bytewax's at-least-once replay changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from reminders.domain.schedule import Scheduled

# Histogram buckets of `fired_at - remind_at`, seconds.
LATENESS_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    """The complete pending set of one task after a change (empty: cancelled)."""

    task_id: str
    user_id: str
    reminders: tuple[Scheduled, ...]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """Something the dataflow did once: kind fired | missed | digest | dlq | dropped."""

    id: str
    kind: str
    lateness_s: float | None = None
    # Whose reminder it was (fired, held, missed, digest): the user's history.
    user_id: str | None = None
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class SentDelivery:
    """A reminder or digest message as the flow produced it, and the reminders it carries."""

    event_id: str
    user_id: str
    reminder_ids: tuple[str, ...]
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class ErasedUser:
    """The flow let go of this user: delete their rows, remember them."""

    user_id: str
    erasure_id: str
    requested_at: datetime


@dataclass
class MetricValues:
    pending: int = 0
    counters: dict[str, float] = field(default_factory=dict)
    lateness_buckets: dict[float, float] = field(default_factory=dict)
    lateness_sum: float = 0.0
    lateness_count: float = 0.0


_REPLACE_DELETE = "DELETE FROM scheduled_reminder WHERE task_id = ANY($1::uuid[])"
_REPLACE_INSERT = """
INSERT INTO scheduled_reminder (task_id, remind_at, user_id, kind, due_at)
SELECT r.* FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::timestamptz[])
    AS r(task_id, remind_at, user_id, kind, due_at)
WHERE NOT EXISTS (SELECT 1 FROM erased_users e WHERE e.user_id = r.user_id)
ON CONFLICT (task_id, remind_at) DO UPDATE
SET user_id = EXCLUDED.user_id, kind = EXCLUDED.kind, due_at = EXCLUDED.due_at
"""
# Counts only rows that were not logged before, so replays leave the counters alone.
_LOG = """
WITH ins AS (
    INSERT INTO flow_log (id, kind, lateness_s, user_id, task_id)
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $5::text[], $6::uuid[])
    ON CONFLICT (id) DO NOTHING
    RETURNING kind, lateness_s
), counts AS (
    SELECT kind AS name, '' AS le, count(*)::float8 AS n FROM ins GROUP BY kind
    UNION ALL
    SELECT 'lateness_bucket', b.le::text, count(*)::float8
    FROM ins CROSS JOIN unnest($4::float8[]) AS b(le)
    WHERE ins.kind = 'fired' AND ins.lateness_s <= b.le GROUP BY b.le
    UNION ALL
    SELECT 'lateness_sum', '', sum(lateness_s) FROM ins WHERE kind = 'fired' HAVING count(*) > 0
)
INSERT INTO flow_counter (name, le, value) SELECT name, le, n FROM counts
ON CONFLICT (name, le) DO UPDATE SET value = flow_counter.value + EXCLUDED.value
"""


_ERASE = """
WITH gone AS (DELETE FROM scheduled_reminder WHERE user_id = $1),
     unsent AS (DELETE FROM sent_delivery WHERE user_id = $1),
     forgot AS (UPDATE flow_log SET user_id = NULL, task_id = NULL WHERE user_id = $1)
INSERT INTO erased_users (user_id, erasure_id, requested_at) VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE
SET erasure_id = EXCLUDED.erasure_id, requested_at = EXCLUDED.requested_at
"""


async def write_batch(
    conn: asyncpg.Connection,
    changes: Sequence[ScheduleChange],
    log: Sequence[LogEntry],
    erased: Sequence[ErasedUser] = (),
) -> None:
    """Apply schedule changes (last one per task wins), log entries and erasures in one
    transaction; erasures last, so nothing of an erased user written in the batch stays."""
    latest: dict[str, ScheduleChange] = {}
    for change in changes:
        latest[change.task_id] = change
    async with conn.transaction():
        if latest:
            task_ids = [uuid.UUID(task_id) for task_id in latest]
            await conn.execute(_REPLACE_DELETE, task_ids)
            rows = [
                (uuid.UUID(c.task_id), r.at, c.user_id, r.kind, r.due_at)
                for c in latest.values()
                for r in c.reminders
            ]
            if rows:
                await conn.execute(_REPLACE_INSERT, *(list(col) for col in zip(*rows, strict=True)))
        if log:
            await conn.execute(
                _LOG,
                [e.id for e in log],
                [e.kind for e in log],
                [e.lateness_s for e in log],
                list(LATENESS_BUCKETS),
                [e.user_id for e in log],
                [uuid.UUID(e.task_id) if e.task_id else None for e in log],
            )
        for user in erased:
            await conn.execute(_ERASE, user.user_id, uuid.UUID(user.erasure_id), user.requested_at)


async def purge_log(conn: asyncpg.Connection, now: datetime, keep: timedelta) -> int:
    """Delete log rows older than `keep` (counters are unaffected)."""
    status = await conn.execute("DELETE FROM flow_log WHERE recorded_at < $1", now - keep)
    return int(status.split()[-1])


_RECORD_SENT = """
INSERT INTO sent_delivery
    (event_id, user_id, reminder_ids, topic, key, value, header_names, header_values)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (event_id) DO NOTHING
"""


async def record_sent(conn: asyncpg.Connection, deliveries: Sequence[SentDelivery]) -> None:
    """Record messages about to be produced (a message recorded before keeps its row)."""
    await conn.executemany(
        _RECORD_SENT,
        [
            (
                d.event_id,
                d.user_id,
                list(d.reminder_ids),
                d.topic,
                d.key,
                d.value,
                [name for name, _ in d.headers],
                [value for _, value in d.headers],
            )
            for d in deliveries
        ],  # fmt: skip
    )


async def last_sent(conn: asyncpg.Connection, span: timedelta) -> list[SentDelivery]:
    """The messages recorded within `span` of the newest record, oldest first: what a replay
    after a crash can fire again (the flow replays at most its last snapshot interval)."""
    rows = await conn.fetch(
        """
        SELECT * FROM sent_delivery
        WHERE recorded_at >= (SELECT max(recorded_at) FROM sent_delivery) - $1::interval
        ORDER BY recorded_at, event_id
        """,
        span,
    )
    return [
        SentDelivery(
            event_id=r["event_id"],
            user_id=r["user_id"],
            reminder_ids=tuple(r["reminder_ids"]),
            topic=r["topic"],
            key=r["key"],
            value=r["value"],
            headers=tuple(zip(r["header_names"], r["header_values"], strict=True)),
        )
        for r in rows
    ]


async def purge_sent(conn: asyncpg.Connection, now: datetime, keep: timedelta) -> int:
    """Delete sent-message records older than `keep`."""
    status = await conn.execute("DELETE FROM sent_delivery WHERE recorded_at < $1", now - keep)
    return int(status.split()[-1])


async def upcoming(
    conn: asyncpg.Connection,
    user_id: str,
    start: datetime,
    end: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The user's reminders in [start, end), ordered by (remind_at, task_id), after a cursor."""
    rows = await conn.fetch(
        """
        SELECT task_id, remind_at, kind, due_at FROM scheduled_reminder
        WHERE user_id = $1 AND remind_at >= $2 AND ($3::timestamptz IS NULL OR remind_at < $3)
          AND ($4::timestamptz IS NULL OR (remind_at, task_id) > ($4, $5::uuid))
        ORDER BY remind_at, task_id
        LIMIT $6
        """,
        user_id,
        start,
        end,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [dict(row) for row in rows]


async def metric_values(conn: asyncpg.Connection) -> MetricValues:
    values = MetricValues()
    values.pending = int(await conn.fetchval("SELECT count(*) FROM scheduled_reminder"))
    for row in await conn.fetch("SELECT name, le, value FROM flow_counter"):
        name, le, value = row["name"], row["le"], float(row["value"])
        if name == "lateness_bucket":
            values.lateness_buckets[float(le)] = value
        elif name == "lateness_sum":
            values.lateness_sum = value
        else:
            values.counters[name] = value
    values.lateness_count = values.counters.get("fired", 0.0)
    return values


async def is_erased(conn: asyncpg.Connection, user_id: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM erased_users WHERE user_id = $1", user_id)
    return found is not None


async def export(conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
    """The user's scheduled reminders and the history the flow log still holds."""
    scheduled = await conn.fetch(
        "SELECT task_id, remind_at, kind, due_at FROM scheduled_reminder WHERE user_id = $1"
        " ORDER BY remind_at, task_id",
        user_id,
    )
    history = await conn.fetch(
        "SELECT id, kind, task_id, lateness_s, recorded_at FROM flow_log WHERE user_id = $1"
        " ORDER BY recorded_at, id",
        user_id,
    )
    return {
        "scheduled": [
            {
                "task_id": str(r["task_id"]),
                "remind_at": r["remind_at"].isoformat(),
                "kind": r["kind"],
                "due_at": r["due_at"].isoformat() if r["due_at"] else None,
            }
            for r in scheduled
        ],  # fmt: skip
        "history": [
            {
                "id": r["id"],
                "kind": r["kind"],
                "task_id": str(r["task_id"]) if r["task_id"] else None,
                "lateness_s": r["lateness_s"],
                "recorded_at": r["recorded_at"].isoformat(),
            }
            for r in history
        ],  # fmt: skip
    }
