"""Use cases of the right to erasure and of portability (issue 16) in the task service.

Erasing deletes the user's tasks and idempotency records, records the erasure and writes
one `user.erased` event (key: the user id) in one transaction; every other service applies
that event to its own data. Erasing again answers with the first erasure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from uuid_utils.compat import uuid7

from events.codec import Envelope
from events.payloads import UserErased
from observability.propagation import current_traceparent
from task_api.db import erasures, outbox
from task_api.db.erasures import ErasureRecord
from task_api.db.models import Task
from task_api.exceptions import UserNotFound
from task_api.services import EventSink, snapshot

SELF = "self"
EXPORT_FORMAT = "taskflow.tasks.export/v1"


def erased_event(sink: EventSink, record: ErasureRecord) -> Envelope[UserErased]:
    payload = UserErased(
        user_id=record.user_id,
        erasure_id=record.erasure_id,
        requested_at=record.requested_at,
        requested_by=record.requested_by,
    )
    return Envelope(
        data=payload,
        source=sink.source,
        subject=record.user_id,
        user_id=record.user_id,
        traceparent=current_traceparent(),
    )


async def emit_erased(conn: BaseDBAsyncClient, sink: EventSink, record: ErasureRecord) -> None:
    """Write the `user.erased` event, keyed by the user, in the caller's transaction."""
    await outbox.enqueue(conn, sink.topics.tasks, record.user_id, erased_event(sink, record))


async def erase_user(
    conn: BaseDBAsyncClient,
    sink: EventSink,
    user_id: str,
    requested_by: str,
    now: datetime,
    *,
    must_exist: bool,
) -> ErasureRecord:
    """Erase the user (or return their earlier erasure). `must_exist`: an operator's request,
    refused with 404 for a user the service never saw (no tasks, no keys, no erasure)."""
    await erasures.lock_user(conn, user_id)
    earlier = await erasures.find(conn, user_id)
    if earlier is not None:
        return earlier
    deleted = await erasures.delete_user_rows(conn, user_id)
    if must_exist and not (deleted.tasks or deleted.idempotency_records):
        raise UserNotFound()
    record = ErasureRecord(user_id, uuid7(), now, requested_by)
    await erasures.insert(conn, record)
    await emit_erased(conn, sink, record)
    return record


async def reapply_erasures(conn: BaseDBAsyncClient, sink: EventSink) -> int:
    """After a restore from backup: delete again what the restore brought back of every
    erased user and publish their `user.erased` again (same erasure id, new event id: a
    consumer applies it again, which changes nothing where the erasure already holds)."""
    records = await erasures.all_erasures(conn)
    for record in records:
        await erasures.lock_user(conn, record.user_id)
        await erasures.delete_user_rows(conn, record.user_id)
        await emit_erased(conn, sink, record)
    return len(records)


async def export_user(conn: BaseDBAsyncClient, user_id: str, now: datetime) -> dict[str, Any]:
    """Everything the task service holds about the user, as JSON-ready data."""
    tasks = await Task.filter(user_id=user_id).order_by("id").using_db(conn)
    record = await erasures.find(conn, user_id)
    return {
        "format": EXPORT_FORMAT,
        "service": "tasks",
        "user_id": user_id,
        "exported_at": now.isoformat(),
        "tasks": [snapshot(task).model_dump(mode="json", exclude={"user_id"}) for task in tasks],
        "erasure": None if record is None else erasure_json(record),
    }


def erasure_json(record: ErasureRecord) -> dict[str, Any]:
    return {
        "erasure_id": str(record.erasure_id),
        "requested_at": record.requested_at.isoformat(),
    }


async def reapply_after_restore() -> int:
    """`taskflow user reapply-erasures`: `reapply_erasures` on the configured database."""
    from tortoise import Tortoise
    from tortoise.transactions import in_transaction

    from task_api.settings import Config

    config = Config()
    await Tortoise.init(config=config.service.tortoise_config(), _enable_global_fallback=True)
    try:
        async with in_transaction() as conn:
            sink = EventSink(config.kafka.topics, config.service.source)
            count = await reapply_erasures(conn, sink)
            await outbox.notify_relays(conn)
            return count
    finally:
        await Tortoise.close_connections()
