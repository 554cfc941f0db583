"""Notification rows: idempotent insert with a gap-free per-user seq (and the task versions
they were made from), inbox reads, read marks.

Every function takes the open connection (or transaction) it runs on.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from uuid_utils.compat import uuid7

from notify_ws.decide import Draft

READ_CHANNEL = "notify_read"  # LISTEN/NOTIFY channel: payload is the user id

# One notification, and task versions riding along ($11 ids, $12 numbers, maybe empty; a
# version only moves forward). A duplicate source event inserts no key, so no seq and no
# row; the versions are saved either way (a data-modifying CTE runs to completion though
# nothing reads it).
_INSERT = """
WITH v AS (
    INSERT INTO task_versions AS tv (task_id, version)
    SELECT * FROM unnest($11::uuid[], $12::bigint[])
    ON CONFLICT (task_id) DO UPDATE SET version = EXCLUDED.version
    WHERE tv.version < EXCLUDED.version
), k AS (
    INSERT INTO notification_keys (dedupe_key) VALUES ($1)
    ON CONFLICT DO NOTHING RETURNING dedupe_key
), c AS (
    INSERT INTO user_counters AS uc (user_id, last_seq, unread) SELECT $2, 1, 1 FROM k
    ON CONFLICT (user_id) DO UPDATE SET last_seq = uc.last_seq + 1, unread = uc.unread + 1
    RETURNING last_seq
)
INSERT INTO notifications
    (id, user_id, seq, kind, title, body, task_id, event_id, dedupe_key, created_at, traceparent)
SELECT $3, $2, c.last_seq, $4, $5, $6, $7, $8, $1, $9, $10 FROM c
RETURNING *
"""


@dataclass(frozen=True, slots=True)
class Notification:
    id: uuid.UUID
    user_id: str
    seq: int
    kind: str
    title: str
    body: str
    task_id: uuid.UUID | None
    event_id: str
    created_at: datetime
    read: bool = False
    traceparent: str | None = None

    def body_json(self) -> dict[str, Any]:
        """The notification `N` of api.md."""
        return {
            "id": str(self.id),
            "seq": self.seq,
            "kind": self.kind,
            "title": self.title,
            "body": self.body,
            "task_id": str(self.task_id) if self.task_id else None,
            "event_id": self.event_id,
            "created_at": self.created_at.isoformat(),
            "read": self.read,
        }


def _row(record: Any) -> Notification:
    return Notification(
        id=record["id"],
        user_id=record["user_id"],
        seq=record["seq"],
        kind=record["kind"],
        title=record["title"],
        body=record["body"],
        task_id=record["task_id"],
        event_id=record["event_id"],
        created_at=record["created_at"],
        read=record["read_at"] is not None,
        traceparent=record["traceparent"],
    )


async def insert_many(
    conn: Any,
    items: Sequence[tuple[Draft, str | None]],
    now: datetime,
    versions: Mapping[uuid.UUID, int] | None = None,
) -> list[Notification]:
    """A batch's notifications and its newer task `versions`, in one round trip (and one
    SELECT for more than one notification); returns the new ones (duplicates of earlier
    source events, or of each other, are left out)."""
    newer = sorted((versions or {}).items())  # one lock order for concurrent batches
    if not items:
        await _save_versions(conn, newer)
        return []
    ids = [uuid.UUID(str(uuid7())) for _ in items]
    # The versions ride on the first notification's statement; the others carry none.
    first = ([t for t, _ in newer], [v for _, v in newer])
    args = [
        (d.dedupe_key, d.user_id, nid, d.kind, d.title, d.body, d.task_id, d.event_id, now, tp,
         *(first if i == 0 else ([], [])))
        for i, (nid, (d, tp)) in enumerate(zip(ids, items, strict=True))
    ]  # fmt: skip
    if len(args) == 1:
        # The usual case below ~100 changes/s: the row comes back from the INSERT itself.
        row = await conn.fetchrow(_INSERT, *args[0])
        return [] if row is None else [_row(row)]
    await conn.executemany(_INSERT, args)  # pipelined: one round trip
    rows = await conn.fetch(
        "SELECT * FROM notifications WHERE id = ANY($1::uuid[]) ORDER BY user_id, seq", ids
    )
    return [_row(r) for r in rows]


async def _save_versions(conn: Any, versions: Sequence[tuple[uuid.UUID, int]]) -> None:
    """The versions of a batch that made no notification (as `_INSERT` saves them)."""
    if not versions:
        return
    await conn.executemany(
        "INSERT INTO task_versions AS tv (task_id, version) VALUES ($1, $2)"
        " ON CONFLICT (task_id) DO UPDATE SET version = EXCLUDED.version"
        " WHERE tv.version < EXCLUDED.version",
        versions,
    )


async def mark_published(conn: Any, ids: Sequence[uuid.UUID], now: datetime) -> None:
    await conn.execute(
        "UPDATE notifications SET published_at = $2 WHERE id = ANY($1::uuid[])", list(ids), now
    )


async def unpublished(conn: Any, before: datetime, limit: int) -> list[Notification]:
    """Committed notifications whose `notification.created` was never confirmed."""
    rows = await conn.fetch(
        "SELECT * FROM notifications WHERE published_at IS NULL AND created_at < $1"
        " ORDER BY created_at LIMIT $2",
        before,
        limit,
    )
    return [_row(r) for r in rows]


async def page(
    conn: Any, user_id: str, unread_only: bool, before_seq: int | None, limit: int
) -> list[Notification]:
    """Newest first, keyset on seq (stable under inserts)."""
    rows = await conn.fetch(
        "SELECT * FROM notifications WHERE user_id = $1"
        " AND ($2::bigint IS NULL OR seq < $2) AND (NOT $3 OR read_at IS NULL)"
        " ORDER BY seq DESC LIMIT $4",
        user_id,
        before_seq,
        unread_only,
        limit,
    )
    return [_row(r) for r in rows]


async def since(conn: Any, user_id: str, after: int, upto: int) -> list[Notification]:
    """Notifications with after < seq <= upto, in seq order (WebSocket replay)."""
    rows = await conn.fetch(
        "SELECT * FROM notifications WHERE user_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
        user_id,
        after,
        upto,
    )
    return [_row(r) for r in rows]


async def by_ids(conn: Any, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Notification]:
    rows = await conn.fetch("SELECT * FROM notifications WHERE id = ANY($1::uuid[])", list(ids))
    return {r["id"]: _row(r) for r in rows}


async def counter(conn: Any, user_id: str) -> tuple[int, int]:
    """(unread, last_seq) of a user, read together."""
    row = await conn.fetchrow(
        "SELECT unread, last_seq FROM user_counters WHERE user_id = $1", user_id
    )
    return (int(row["unread"]), int(row["last_seq"])) if row else (0, 0)


async def mark_read(conn: Any, user_id: str, ids: Sequence[uuid.UUID] | None, now: datetime) -> int:
    """Mark some (or, with None, all) of the user's notifications read; returns how many
    changed. Runs in the caller's transaction and wakes every hub on commit."""
    if ids is None:
        changed = await conn.fetchval(
            "WITH r AS (UPDATE notifications SET read_at = $2 WHERE user_id = $1"
            " AND read_at IS NULL RETURNING 1) SELECT count(*) FROM r",
            user_id,
            now,
        )
    else:
        changed = await conn.fetchval(
            "WITH r AS (UPDATE notifications SET read_at = $3 WHERE user_id = $1"
            " AND id = ANY($2::uuid[]) AND read_at IS NULL RETURNING 1) SELECT count(*) FROM r",
            user_id,
            list(ids),
            now,
        )
    if changed:
        await conn.execute(
            "UPDATE user_counters SET unread = greatest(unread - $2, 0) WHERE user_id = $1",
            user_id,
            changed,
        )
        await conn.execute("SELECT pg_notify($1, $2)", READ_CHANNEL, user_id)
    return int(changed)


async def exists(conn: Any, user_id: str, notification_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM notifications WHERE id = $1 AND user_id = $2", notification_id, user_id
    )
    return found is not None
