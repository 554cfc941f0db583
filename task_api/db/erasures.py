"""Persistence of erasures: the per-user lock, the erasure record, and deleting a user's rows.

Every function takes the open transaction: the deletes, the erasure row and the
`user.erased` outbox row commit or roll back as one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

# The SQLSTATE the `tasks_refuse_erased_user` trigger raises (migration 0004).
ERASED_SQLSTATE = "TF410"
# The same per-user lock the trigger takes shared (namespace 16 keeps it apart from others).
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended($1, 16))"
FIND_SQL = "SELECT erasure_id, requested_at, requested_by FROM erasures WHERE user_id = $1"
INSERT_SQL = """
INSERT INTO erasures (user_id, erasure_id, requested_at, requested_by) VALUES ($1, $2, $3, $4)
"""
DELETE_TASKS_SQL = "DELETE FROM tasks WHERE user_id = $1 RETURNING id::text AS id"
DELETE_KEYS_SQL = "DELETE FROM idempotency_keys WHERE user_id = $1 RETURNING id"
# Published events of the deleted tasks: the relay holds no lock on these, and the topic
# already has them; unpublished ones go out first and are pruned after the retention.
DELETE_PUBLISHED_SQL = """
DELETE FROM outbox WHERE published_at IS NOT NULL AND key = ANY($1::text[]) RETURNING id
"""
ALL_SQL = "SELECT user_id, erasure_id, requested_at, requested_by FROM erasures ORDER BY user_id"


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    user_id: str
    erasure_id: uuid.UUID
    requested_at: datetime
    # "self" or the operator's user id.
    requested_by: str


@dataclass(frozen=True, slots=True)
class Deleted:
    """How many rows of a user an erasure removed."""

    tasks: int
    idempotency_records: int
    outbox_rows: int


async def lock_user(conn: BaseDBAsyncClient, user_id: str) -> None:
    """Hold the user's lock until commit: no task of theirs is inserted meanwhile."""
    await conn.execute_query(LOCK_SQL, [user_id])


async def find(conn: BaseDBAsyncClient, user_id: str) -> ErasureRecord | None:
    rows = await conn.execute_query_dict(FIND_SQL, [user_id])
    if not rows:
        return None
    row = rows[0]
    return ErasureRecord(user_id, row["erasure_id"], row["requested_at"], row["requested_by"])


async def is_erased(conn: BaseDBAsyncClient, user_id: str) -> bool:
    return await find(conn, user_id) is not None


async def delete_user_rows(conn: BaseDBAsyncClient, user_id: str) -> Deleted:
    """Delete the user's tasks, idempotency records and the published events of those tasks."""
    tasks = await conn.execute_query_dict(DELETE_TASKS_SQL, [user_id])
    keys = await conn.execute_query_dict(DELETE_KEYS_SQL, [user_id])
    task_ids = [row["id"] for row in tasks]
    events = await conn.execute_query_dict(DELETE_PUBLISHED_SQL, [task_ids]) if task_ids else []
    return Deleted(len(tasks), len(keys), len(events))


async def insert(conn: BaseDBAsyncClient, record: ErasureRecord) -> None:
    await conn.execute_query(
        INSERT_SQL,
        [record.user_id, record.erasure_id, record.requested_at, record.requested_by],
    )


async def all_erasures(conn: BaseDBAsyncClient) -> list[ErasureRecord]:
    rows = await conn.execute_query_dict(ALL_SQL)
    return [
        ErasureRecord(r["user_id"], r["erasure_id"], r["requested_at"], r["requested_by"])
        for r in rows
    ]


def is_erased_refusal(exc: BaseException) -> bool:
    """Whether a database error (possibly wrapped by Tortoise) is the erased-user trigger."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == ERASED_SQLSTATE:
            return True
        seen = seen.__cause__
    return False
