"""`Idempotency-Key`: the same key from the same user within the TTL replays the first reply.

The key row is written in the same transaction as the change, so a replay never sees a
change without its reply, and a concurrent duplicate waits on the unique index.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from task_api.exceptions import IdempotencyInProgress, IdempotencyKeyReused
from task_api.http.replies import Reply
from webapi.problems import ValidationProblem

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
REPLAYED_HEADER = "Idempotent-Replayed"


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= 255:
        raise ValidationProblem(
            "Idempotency-Key must be 1 to 255 characters",
            [{"field": "Idempotency-Key", "message": "must be 1 to 255 characters"}],
        )
    return key


async def claim(
    conn: BaseDBAsyncClient,
    user_id: str,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> Reply | None:
    """None when this request owns the key now; else the stored reply to replay."""
    # execute_query_dict, not execute_query: Tortoise runs an INSERT through execute() and
    # reads the OID of "INSERT 0 1" as its row count, so RETURNING is the reliable answer.
    claimed = await conn.execute_query_dict(CLAIM_SQL, [user_id, key, fingerprint, now, now - ttl])
    if claimed:
        return None
    _, found = await conn.execute_query(FIND_SQL, [user_id, key])
    stored = found[0]
    if stored["request_hash"] != fingerprint:
        raise IdempotencyKeyReused()
    if stored["status_code"] is None:
        raise IdempotencyInProgress("a request with this Idempotency-Key is still in progress")
    raw_headers = stored["response_headers"]
    headers = orjson.loads(raw_headers) if isinstance(raw_headers, str | bytes) else raw_headers
    headers[REPLAYED_HEADER] = "true"
    return Reply(stored["status_code"], bytes(stored["response_body"] or b""), headers)


async def store(conn: BaseDBAsyncClient, user_id: str, key: str, reply: Reply) -> None:
    await conn.execute_query(
        STORE_SQL, [user_id, key, reply.status, reply.body, orjson.dumps(reply.headers).decode()]
    )
