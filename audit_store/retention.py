"""Retention policies, legal holds and the purge that turns expired entries into tombstones.

A purge clears the content of entries older than their type's policy (by `recorded_at`)
unless a legal hold covers their user or task. The row stays with its hashes, so every
chain still verifies, and the purge records itself in the service chain in the same
transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from audit_store.erasure import complete_deferred
from audit_store.exceptions import HoldNotFound
from audit_store.ingest import append_local
from audit_store.ports import Clock
from audit_store.service_entries import service_record

HoldKind = Literal["user", "task"]

# The most specific policy wins: an exact type, else the longest matching "prefix.".
_ELIGIBLE = """
WITH p(pattern, days) AS (SELECT * FROM unnest($1::text[], $2::int[]))
SELECT e.entry_id, EXISTS (
    SELECT 1 FROM audit_holds h WHERE h.released_at IS NULL
      AND ((h.kind = 'user' AND h.value = e.user_id) OR (h.kind = 'task' AND h.value = e.task_id))
) AS held
FROM audit_entries e
LEFT JOIN LATERAL (
    SELECT p.days FROM p
    WHERE p.pattern = e.type OR (right(p.pattern, 1) = '.' AND starts_with(e.type, p.pattern))
    ORDER BY p.pattern = e.type DESC, length(p.pattern) DESC LIMIT 1
) pol ON true
WHERE e.purged_at IS NULL
  AND e.recorded_at < $3::timestamptz - make_interval(days => coalesce(pol.days, $4::int))
  AND e.entry_id > $5
ORDER BY e.entry_id LIMIT $6
"""

_TOMBSTONE = """
UPDATE audit_entries SET purged_at = $2, data = NULL, sealed = NULL, subject = NULL,
    user_id = NULL, task_id = NULL, trace_id = NULL, search = NULL
WHERE entry_id = ANY($1::bigint[])
"""


@dataclass(frozen=True, slots=True)
class PurgeResult:
    purged: int
    held: int
    event_id: str


@dataclass(frozen=True, slots=True)
class Hold:
    id: uuid.UUID
    kind: HoldKind
    value: str
    reason: str
    created_by: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "kind": self.kind,
            "value": self.value,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


async def purge(
    pool: asyncpg.Pool,
    policies: Mapping[str, int],
    default_days: int | None,
    clock: Clock,
    actor: str = "system",
    batch: int = 5000,
) -> PurgeResult:
    """Tombstone expired, unheld entries and record the purge; one transaction."""
    now = clock()
    patterns = sorted(policies)
    async with pool.acquire() as conn, conn.transaction():
        purged = held = after = 0
        while True:
            rows = await conn.fetch(
                _ELIGIBLE,
                patterns,
                [policies[p] for p in patterns],
                now,
                default_days,
                after,
                batch,
            )
            doomed = [r["entry_id"] for r in rows if not r["held"]]
            held += len(rows) - len(doomed)
            if doomed:
                await conn.execute(_TOMBSTONE, doomed, now)
                purged += len(doomed)
            if len(rows) < batch:
                break
            after = rows[-1]["entry_id"]
        record = service_record(
            "audit.purged",
            actor,
            {
                "purged": purged,
                "held": held,
                "policies": dict(policies),
                "default_days": default_days,
                "basis": "recorded_at",
                "run_at": now.isoformat(),
            },
            now,
        )
        await append_local(conn, [record], now)
    return PurgeResult(purged, held, record.event_id)


async def place_hold(
    pool: asyncpg.Pool, kind: HoldKind, value: str, reason: str, actor: str, clock: Clock
) -> tuple[Hold, bool]:
    """Place a hold (or return the active one); True when it is new."""
    now = clock()
    async with pool.acquire() as conn, conn.transaction():
        existing = await conn.fetchrow(
            "SELECT * FROM audit_holds WHERE kind = $1 AND value = $2 AND released_at IS NULL"
            " FOR UPDATE",
            kind,
            value,
        )
        if existing is not None:
            return _hold(existing), False
        hold = Hold(uuid.uuid4(), kind, value, reason, actor, now)
        await conn.execute(
            "INSERT INTO audit_holds (hold_id, kind, value, reason, created_by, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            hold.id,
            kind,
            value,
            reason,
            actor,
            now,
        )
        task_id = value if kind == "task" else None
        await append_local(
            conn, [service_record("audit.hold.placed", actor, hold.as_json(), now, task_id)], now
        )
    return hold, True


async def release_hold(
    pool: asyncpg.Pool,
    actor: str,
    clock: Clock,
    hold_id: uuid.UUID | None = None,
    kind: HoldKind | None = None,
    value: str | None = None,
) -> Hold:
    """Release an active hold by id or by (kind, value); `HoldNotFound` otherwise."""
    now = clock()
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE audit_holds SET released_at = $4, released_by = $5"
            " WHERE released_at IS NULL AND (hold_id = $1 OR (kind = $2 AND value = $3))"
            " RETURNING *",
            hold_id,
            kind,
            value,
            now,
            actor,
        )
        if row is None:
            raise HoldNotFound("no active legal hold matches")
        hold = _hold(row)
        data = hold.as_json() | {"released_at": now.isoformat()}
        task_id = hold.value if hold.kind == "task" else None
        records = [service_record("audit.hold.released", actor, data, now, task_id)]
        if hold.kind == "user":  # an erasure this hold deferred is completed now
            records += await complete_deferred(conn, hold.value, hold.id, now)
        await append_local(conn, records, now)
    return hold


async def active_holds(pool: asyncpg.Pool) -> list[Hold]:
    rows = await pool.fetch(
        "SELECT * FROM audit_holds WHERE released_at IS NULL ORDER BY created_at, hold_id"
    )
    return [_hold(r) for r in rows]


def _hold(row: Mapping[str, Any]) -> Hold:
    return Hold(
        row["hold_id"],
        row["kind"],
        row["value"],
        row["reason"],
        row["created_by"],
        row["created_at"],
    )
