"""Idempotency keys, free of any transport: the same key from the same user within the TTL
gets the first outcome back and writes nothing.

The key row is written in the same transaction as the change, so a replay never sees a
change without its outcome, and a concurrent duplicate waits on the unique index. REST
(`http/idempotency.py`) and the MCP tools share the store (one key space per user).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from task_api.exceptions import IdempotencyInProgress, IdempotencyKeyReused

CLAIM_SQL = """
INSERT INTO idempotency_keys (user_id, key, request_hash, response_headers, created_at)
VALUES ($1, $2, $3, '{}', $4)
ON CONFLICT (user_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, created_at = EXCLUDED.created_at,
        status_code = NULL, response_body = NULL, response_headers = '{}'
    WHERE idempotency_keys.created_at < $5
RETURNING id
"""
FIND_SQL = """
SELECT request_hash, status_code, response_body, response_headers
FROM idempotency_keys WHERE user_id = $1 AND key = $2
"""
STORE_SQL = """
UPDATE idempotency_keys SET status_code = $3, response_body = $4, response_headers = $5
WHERE user_id = $1 AND key = $2
"""
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the first request with a key produced (an HTTP-shaped status, body, headers)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def fingerprint(*parts: bytes) -> str:
    """A hash of what identifies a request (method, path, body; or tool and arguments)."""
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


async def claim(
    conn: BaseDBAsyncClient,
    user_id: str,
    key: str,
    request_hash: str,
    now: datetime,
    ttl: timedelta,
) -> Outcome | None:
    """None when this request owns the key now; else the stored outcome to replay."""
    # execute_query_dict, not execute_query: Tortoise runs an INSERT through execute() and
    # reads the OID of "INSERT 0 1" as its row count, so RETURNING is the reliable answer.
    claimed = await conn.execute_query_dict(CLAIM_SQL, [user_id, key, request_hash, now, now - ttl])
    if claimed:
        return None
    _, found = await conn.execute_query(FIND_SQL, [user_id, key])
    stored = found[0]
    if stored["request_hash"] != request_hash:
        raise IdempotencyKeyReused()
    if stored["status_code"] is None:
        raise IdempotencyInProgress("a request with this Idempotency-Key is still in progress")
    raw_headers = stored["response_headers"]
    headers = orjson.loads(raw_headers) if isinstance(raw_headers, str | bytes) else raw_headers
    return Outcome(stored["status_code"], bytes(stored["response_body"] or b""), headers)


async def store(conn: BaseDBAsyncClient, user_id: str, key: str, outcome: Outcome) -> None:
    await conn.execute_query(
        STORE_SQL,
        [user_id, key, outcome.status, outcome.body, orjson.dumps(outcome.headers).decode()],
    )
