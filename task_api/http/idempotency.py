"""`Idempotency-Key` on REST writes: the header's checks and the reply as a stored outcome
(the store itself is `task_api.idempotency`, shared with the MCP tools)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from task_api import idempotency
from task_api.http.replies import Reply
from webapi.problems import ValidationProblem

REPLAYED_HEADER = "Idempotent-Replayed"


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return idempotency.fingerprint(method.encode(), path.encode(), body)


def check_key(key: str) -> str:
    if not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH:
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
    outcome = await idempotency.claim(conn, user_id, key, fingerprint, now, ttl)
    if outcome is None:
        return None
    return Reply(outcome.status, outcome.body, {**outcome.headers, REPLAYED_HEADER: "true"})


async def store(conn: BaseDBAsyncClient, user_id: str, key: str, reply: Reply) -> None:
    await idempotency.store(
        conn, user_id, key, idempotency.Outcome(reply.status, reply.body, reply.headers)
    )
