"""Erasure in the audit store: shred a user's data key, unless a legal hold defers it.

Driven by the `user.erased` entries the writer has just stored (so a replayed event,
skipped by event id, changes nothing), in the batch's transaction. Shredding destroys the
user's data key, drops their full-text words and redacts their entries from before
crypto-shredding (format 1); it is recorded as `audit.erasure.completed` (or
`audit.erasure.deferred` under a legal hold) in the service chain, with counts and ids
only. Releasing the hold completes a deferred erasure (`complete_deferred`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from audit_store.chain import canonical_data
from audit_store.db.keys import shred_key
from audit_store.personal import PERSONAL, split
from audit_store.records import AuditRecord
from audit_store.service_entries import service_record

USER_ERASED = "user.erased"
ERASURE_APPLIED = "user.erasure.applied"
COMPLETED, DEFERRED = "completed", "deferred_legal_hold"
SERVICES = ("tasks", "notifications", "reminders", "audit")

_UPSERT_ERASURE = """
INSERT INTO audit_erasures (user_id, erasure_id, event_id, requested_at, requested_by, status,
    recorded_at, completed_at)
VALUES ($1, $2, $3, $4, $5, $6::text, $7::timestamptz,
    CASE WHEN $6::text = 'completed' THEN $7::timestamptz END)
ON CONFLICT (user_id) DO UPDATE SET erasure_id = EXCLUDED.erasure_id,
    event_id = EXCLUDED.event_id, requested_at = EXCLUDED.requested_at,
    requested_by = EXCLUDED.requested_by, status = EXCLUDED.status,
    recorded_at = EXCLUDED.recorded_at, completed_at = EXCLUDED.completed_at
"""
_PROGRESS = """
INSERT INTO audit_erasure_progress (user_id, erasure_id, service, outcome, event_id, applied_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id, erasure_id, service) DO UPDATE SET outcome = EXCLUDED.outcome,
    event_id = EXCLUDED.event_id, applied_at = EXCLUDED.applied_at
WHERE EXCLUDED.applied_at >= audit_erasure_progress.applied_at
"""


async def apply_stored(
    conn: asyncpg.Connection, records: Sequence[AuditRecord], now: datetime
) -> list[AuditRecord]:
    """Effects of newly stored erasure events; returns the service entries to chain."""
    out: list[AuditRecord] = []
    for rec in records:
        if rec.type == USER_ERASED:
            out.extend(await _erase(conn, rec, now))
        elif rec.type == ERASURE_APPLIED:
            data = orjson.loads(rec.data_json)
            await conn.execute(
                _PROGRESS,
                data["user_id"],
                uuid.UUID(data["erasure_id"]),
                data["service"],
                data.get("outcome", COMPLETED),
                rec.event_id,
                datetime.fromisoformat(data["applied_at"]),
            )
    return out


async def _erase(conn: asyncpg.Connection, rec: AuditRecord, now: datetime) -> list[AuditRecord]:
    data = orjson.loads(rec.data_json)
    user, erasure_id = data["user_id"], uuid.UUID(data["erasure_id"])
    previous = await conn.fetchrow(
        "SELECT erasure_id FROM audit_erasures WHERE user_id = $1 FOR UPDATE", user
    )
    if previous is not None and previous["erasure_id"] == erasure_id:
        return []  # the same erasure published again under another event id
    holds = await conn.fetch(
        "SELECT hold_id FROM audit_holds WHERE kind = 'user' AND value = $1"
        " AND released_at IS NULL ORDER BY hold_id",
        user,
    )
    status = DEFERRED if holds else COMPLETED
    await conn.execute(
        _UPSERT_ERASURE,
        user,
        erasure_id,
        rec.event_id,
        datetime.fromisoformat(data["requested_at"]),
        data["requested_by"],
        status,
        now,
    )
    about = {"user_id": user, "erasure_id": str(erasure_id), "erasure_event_id": rec.event_id}
    if holds:
        held = {"holds": [str(h["hold_id"]) for h in holds], "outcome": DEFERRED}
        return [_record("audit.erasure.deferred", user, about | held, now)]
    counts = await shred(conn, user, now)
    return [_record("audit.erasure.completed", user, about | counts, now)]


async def complete_deferred(
    conn: asyncpg.Connection, user: str, hold_id: uuid.UUID, now: datetime
) -> list[AuditRecord]:
    """Shred a user whose erasure waited for the legal hold just released (same transaction)."""
    row = await conn.fetchrow(
        "SELECT erasure_id, event_id FROM audit_erasures WHERE user_id = $1 AND status = $2"
        " FOR UPDATE",
        user,
        DEFERRED,
    )
    if row is None:
        return []
    counts = await shred(conn, user, now)
    await conn.execute(
        "UPDATE audit_erasures SET status = $2, completed_at = $3 WHERE user_id = $1",
        user,
        COMPLETED,
        now,
    )
    about = {
        "user_id": user,
        "erasure_id": str(row["erasure_id"]),
        "erasure_event_id": row["event_id"],
        "released_hold": str(hold_id),
    }
    return [_record("audit.erasure.completed", user, about | counts, now)]


async def reapply(conn: asyncpg.Connection, now: datetime) -> list[AuditRecord]:
    """Shred again every completed erasure that a restored backup brought back (a key, words
    or plaintext entries of an erased user); returns the service entries to chain."""
    users = await conn.fetch(
        "SELECT e.user_id, e.erasure_id, e.event_id FROM audit_erasures e"
        " WHERE e.status = 'completed' AND (EXISTS (SELECT 1 FROM audit_user_keys k"
        "   WHERE k.user_id = e.user_id AND k.wrapped_key IS NOT NULL)"
        " OR NOT EXISTS (SELECT 1 FROM audit_user_keys k WHERE k.user_id = e.user_id)"
        " OR EXISTS (SELECT 1 FROM audit_entries a WHERE a.user_id = e.user_id"
        "   AND a.purged_at IS NULL AND a.format = 1 AND a.erased_at IS NULL"
        "   AND a.type = ANY($1::text[])))"
        " ORDER BY e.user_id",
        list(PERSONAL),
    )
    out = []
    for row in users:
        counts = await shred(conn, row["user_id"], now)
        about = {
            "user_id": row["user_id"],
            "erasure_id": str(row["erasure_id"]),
            "erasure_event_id": row["event_id"],
            "reapplied": True,
        }
        out.append(_record("audit.erasure.completed", row["user_id"], about | counts, now))
    return out


async def shred(conn: asyncpg.Connection, user: str, now: datetime) -> dict[str, int]:
    """Destroy the user's data key, drop their search words, redact their format 1 entries."""
    await shred_key(conn, user, now)  # first: waits for batches still using the key
    cleared = await conn.execute(
        "UPDATE audit_entries SET search = NULL"
        " WHERE user_id = $1 AND search IS NOT NULL AND purged_at IS NULL",
        user,
    )
    legacy = await conn.fetch(
        "SELECT entry_id, type, data::text AS data FROM audit_entries WHERE user_id = $1"
        " AND format = 1 AND erased_at IS NULL AND purged_at IS NULL AND type = ANY($2::text[])",
        user,
        list(PERSONAL),
    )
    if legacy:
        await conn.execute(
            "UPDATE audit_entries e SET data = r.d::json, erased_at = $3, search = NULL"
            " FROM unnest($1::bigint[], $2::text[]) AS r(id, d) WHERE e.entry_id = r.id",
            [r["entry_id"] for r in legacy],
            [_clear_part(r["type"], r["data"]) for r in legacy],
            now,
        )
    counts = await conn.fetchrow(
        "SELECT count(*) AS entries, count(sealed) AS sealed FROM audit_entries WHERE user_id = $1",
        user,
    )
    return {
        "entries": counts["entries"],
        "sealed_entries": counts["sealed"],
        "legacy_redacted": len(legacy),
        "search_cleared": int(cleared.rsplit(" ", 1)[-1]),
    }


def _clear_part(event_type: str, data: str) -> str:
    return canonical_data(split(event_type, orjson.loads(data))[0])


def _record(event_type: str, user: str, data: dict[str, Any], now: datetime) -> AuditRecord:
    """A service-chain entry about `user`'s erasure: ids, counts and outcome only."""
    record = service_record(event_type, "system", data, now)
    return dataclasses.replace(record, user_id=user, search_text=event_type)


async def erasure_status(conn: asyncpg.Connection, user: str) -> dict[str, Any] | None:
    """Where each service stands with the user's latest erasure; None if none is known."""
    row = await conn.fetchrow("SELECT * FROM audit_erasures WHERE user_id = $1", user)
    if row is None:
        return None
    progress: Mapping[str, str] = {
        r["service"]: r["outcome"]
        for r in await conn.fetch(
            "SELECT service, outcome FROM audit_erasure_progress"
            " WHERE user_id = $1 AND erasure_id = $2",
            user,
            row["erasure_id"],
        )
    }
    # The task service deleted the user's tasks in the transaction that wrote
    # `user.erased`: that the event is stored here means its part is done.
    services = {
        "tasks": COMPLETED,
        "notifications": progress.get("notifications", "pending"),
        "reminders": progress.get("reminders", "pending"),
        "audit": row["status"],
    }
    return {
        "user_id": user,
        "erasure_id": str(row["erasure_id"]),
        "requested_at": row["requested_at"].isoformat(),
        "requested_by": row["requested_by"],
        "services": services,
        "done": all(s == COMPLETED for s in services.values()),
    }
