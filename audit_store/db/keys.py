"""SQL of the per-user data keys (`audit_user_keys`): lock or create, shred, re-wrap."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import asyncpg

from audit_store.crypto import Keyring

# (wrapped key, KEK id), or None once the key is shredded.
StoredKey = tuple[bytes, str] | None

# FOR SHARE: an erasure (which updates the row) waits until the batches that encrypt with
# the key or index the user's words have committed, and its later UPDATE of the entries
# then sees their rows; a batch that comes after the erasure sees the key gone.
_LOCK = """
SELECT user_id, wrapped_key, kek_id FROM audit_user_keys
WHERE user_id = ANY($1::text[]) ORDER BY user_id FOR SHARE
"""
_CREATE = """
INSERT INTO audit_user_keys (user_id, wrapped_key, kek_id, created_at)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::timestamptz[])
ON CONFLICT (user_id) DO NOTHING
RETURNING user_id, wrapped_key, kek_id
"""
_SHRED = """
INSERT INTO audit_user_keys (user_id, wrapped_key, kek_id, created_at, shredded_at)
VALUES ($1, NULL, NULL, $2, $2)
ON CONFLICT (user_id) DO UPDATE SET wrapped_key = NULL, kek_id = NULL,
    shredded_at = coalesce(audit_user_keys.shredded_at, EXCLUDED.shredded_at)
"""


async def lock_keys(
    conn: asyncpg.Connection, users: Collection[str], keyring: Keyring, now: datetime
) -> dict[str, StoredKey]:
    """Each user's key, locked for this transaction; a user without one gets one."""
    found = {r["user_id"]: _stored(r) for r in await conn.fetch(_LOCK, sorted(users))}
    missing = sorted(set(users) - found.keys())
    if missing:
        made = [keyring.new_data_key(u) for u in missing]
        rows = await conn.fetch(
            _CREATE, missing, [m[0] for m in made], [m[1] for m in made], [now] * len(missing)
        )
        found.update((r["user_id"], _stored(r)) for r in rows)
        late = sorted(set(missing) - found.keys())  # created (or shredded) concurrently
        if late:
            found.update((r["user_id"], _stored(r)) for r in await conn.fetch(_LOCK, late))
    return found


def _stored(row: asyncpg.Record) -> StoredKey:
    wrapped, kek_id = row["wrapped_key"], row["kek_id"]
    return (bytes(wrapped), kek_id) if wrapped is not None else None


async def shred_key(conn: asyncpg.Connection, user_id: str, now: datetime) -> None:
    """Destroy the user's data key (and remember that it is gone)."""
    await conn.execute(_SHRED, user_id, now)


async def rewrap_keys(pool: asyncpg.Pool, keyring: Keyring, batch: int = 1000) -> int:
    """Re-wrap every data key not wrapped by the current KEK; returns how many."""
    done = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT user_id, wrapped_key, kek_id FROM audit_user_keys"
                " WHERE wrapped_key IS NOT NULL AND kek_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
                keyring.current_id,
                batch,
            )
            for row in rows:
                wrapped = keyring.rewrap(row["user_id"], bytes(row["wrapped_key"]), row["kek_id"])
                await conn.execute(
                    "UPDATE audit_user_keys SET wrapped_key = $2, kek_id = $3 WHERE user_id = $1",
                    row["user_id"],
                    wrapped,
                    keyring.current_id,
                )
        done += len(rows)
        if len(rows) < batch:
            return done
