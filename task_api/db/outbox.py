"""The transactional outbox, write side: events join the change's transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate
from tortoise.backends.base.client import BaseDBAsyncClient

from events.codec import Envelope, encode
from task_api.db import written
from task_api.db.models import OutboxEvent

NOTIFY_CHANNEL = "taskflow_outbox"


def trace_headers(envelope: Envelope[Any]) -> list[list[str]]:
    """Kafka headers for an event: W3C trace context of the current span and `ce_type`."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers = [[name, value] for name, value in carrier.items()]
    headers.append(["ce_type", envelope.type])
    return headers


async def enqueue(conn: BaseDBAsyncClient, topic: str, key: str, envelope: Envelope[Any]) -> None:
    """Write the event in the caller's transaction; the relay claims it after commit."""
    written.record_unrecorded()
    await OutboxEvent.create(
        using_db=conn,
        event_id=uuid.UUID(envelope.id),
        topic=topic,
        key=key,
        event_type=envelope.type,
        payload=encode(envelope),
        headers=trace_headers(envelope),
        created_at=datetime.now(UTC),
    )


async def notify_relays(conn: BaseDBAsyncClient) -> None:
    """Wake relays in other processes when this transaction commits."""
    await conn.execute_query_dict("SELECT pg_notify($1, '')", [NOTIFY_CHANNEL])


async def resend_published_since(conn: BaseDBAsyncClient, since: datetime) -> int:
    """Queue events published after `since` again (for a broker that lost its log)."""
    rows = await conn.execute_query_dict(
        "UPDATE outbox SET published_at = NULL WHERE published_at >= $1 RETURNING id", [since]
    )
    return len(rows)
