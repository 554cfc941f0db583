"""Erased users: deleting one user's data, the erased-user record that keeps them deleted,
and the outbox of `user.erasure.applied` (the record's `published_at`).

Every function takes the open connection (or transaction) it runs on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ERASED_CHANNEL = "notify_erased"  # LISTEN/NOTIFY channel: payload is the user id
# Namespace of the per-user advisory locks (pg_advisory_xact_lock(int4, int4)).
_LOCK_SPACE = 0x6E65


@dataclass(frozen=True, slots=True)
class Erasure:
    """An erasure this service applied (its `erased_users` row)."""

    user_id: str
    erasure_id: uuid.UUID
    requested_at: datetime
    erased_at: datetime
    traceparent: str | None = None


async def lock_users(conn: Any, shared: Iterable[str], exclusive: Iterable[str]) -> None:
    """Serialise an erasure with other transactions touching the same user.

    A batch writing for a user takes a shared lock, an erasure an exclusive one, each for
    the rest of the transaction; the erased-user check runs after the lock, so a batch on
    another partition either commits before the erasure (and is deleted by it) or sees its
    record (and drops the event). Locks are taken in one order; a deadlock only retries.
    """
    excl = sorted(set(exclusive))
    share = sorted(set(shared) - set(excl))
    if excl:
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(u)) FROM unnest($2::text[]) AS u",
            _LOCK_SPACE, excl,
        )  # fmt: skip
    if share:
        await conn.execute(
            "SELECT pg_advisory_xact_lock_shared($1, hashtext(u)) FROM unnest($2::text[]) AS u",
            _LOCK_SPACE, share,
        )  # fmt: skip


async def erased_among(conn: Any, user_ids: Sequence[str]) -> set[str]:
    """The users of `user_ids` that were erased."""
    if not user_ids:
        return set()
    rows = await conn.fetch(
        "SELECT user_id FROM erased_users WHERE user_id = ANY($1::text[])", list(user_ids)
    )
    return {r["user_id"] for r in rows}


async def is_erased(conn: Any, user_id: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM erased_users WHERE user_id = $1", user_id)
    return found is not None


async def erase(conn: Any, erasure: Erasure) -> bool:
    """Delete the user's inbox, counters, preferences, push subscriptions and deliveries, and
    record the erasure (to be published). False when this erasure was applied before: then
    nothing is published again. A new erasure id for an erased user is published anew (the
    deletes find nothing more)."""
    user = erasure.user_id
    # Deliveries of a notification go with it (ON DELETE CASCADE); digests carry none.
    await conn.execute(
        "DELETE FROM deliveries WHERE notification_id IS NULL AND user_id = $1", user
    )
    await conn.execute("DELETE FROM notifications WHERE user_id = $1", user)
    await conn.execute("DELETE FROM user_counters WHERE user_id = $1", user)
    await conn.execute("DELETE FROM preferences WHERE user_id = $1", user)
    await conn.execute("DELETE FROM push_subscriptions WHERE user_id = $1", user)
    recorded = await conn.fetchval(
        "INSERT INTO erased_users AS e"
        " (user_id, erasure_id, requested_at, erased_at, traceparent)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE"
        " SET erasure_id = EXCLUDED.erasure_id, requested_at = EXCLUDED.requested_at,"
        " erased_at = EXCLUDED.erased_at, traceparent = EXCLUDED.traceparent,"
        " published_at = NULL WHERE e.erasure_id <> EXCLUDED.erasure_id RETURNING true",
        user, erasure.erasure_id, erasure.requested_at, erasure.erased_at, erasure.traceparent,
    )  # fmt: skip
    # Every hub node closes the user's sockets when this commits.
    await conn.execute("SELECT pg_notify($1, $2)", ERASED_CHANNEL, user)
    return bool(recorded)


def _erasure(r: Any) -> Erasure:
    return Erasure(r["user_id"], r["erasure_id"], r["requested_at"], r["erased_at"],
                   r["traceparent"])  # fmt: skip


async def unpublished(conn: Any, before: datetime | None, limit: int) -> list[Erasure]:
    """Erasures whose `user.erasure.applied` the broker has not confirmed (oldest first)."""
    rows = await conn.fetch(
        "SELECT * FROM erased_users WHERE published_at IS NULL"
        " AND ($1::timestamptz IS NULL OR erased_at < $1) ORDER BY erased_at LIMIT $2",
        before, limit,
    )  # fmt: skip
    return [_erasure(r) for r in rows]


async def mark_published(conn: Any, done: Sequence[Erasure], now: datetime) -> None:
    if not done:
        return
    await conn.execute(
        "UPDATE erased_users SET published_at = $3 FROM unnest($1::text[], $2::uuid[]) AS d(u, e)"
        " WHERE user_id = d.u AND erasure_id = d.e",
        [e.user_id for e in done], [e.erasure_id for e in done], now,
    )  # fmt: skip
