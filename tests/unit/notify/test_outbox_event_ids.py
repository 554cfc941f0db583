"""A notification's events keep one event id however often the outbox sweep re-sends
them, so consumers that apply each event id once (the audit store) record them once.

Found by the chaos suite: after a broker freeze the sweep re-published notification.created
under a fresh id and the audit trail held the notification twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message

from events.codec import decode
from events.payloads import (
    NotificationBody,
    NotificationCreated,
    NotificationDelivered,
    NotificationFailed,
    Payload,
)
from events.topics import Topics
from notify_ws.worker.outbox import Publisher

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
NOTE = NotificationBody(
    id=uuid.UUID(int=7), seq=3, kind="task.created", title="New task: milk", body="No due date.",
    task_id=uuid.UUID(int=1), event_id="e-1", created_at=T0, read=False,
)  # fmt: skip


class RecordingProducer:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[Any]:
        self.values.append(value)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(Message(topic=topic, value=value))
        return future


class FixedClock:
    def now(self) -> datetime:
        return T0


async def _ids(payload: Payload, times: int = 2) -> list[str]:
    producer = RecordingProducer()
    publisher = Publisher(producer, Topics(), "/n", None, FixedClock())  # type: ignore[arg-type]
    for _ in range(times):
        await publisher._send(payload, "u", "s", None)
    return [decode(value).id for value in producer.values]


async def test_a_republished_notification_created_keeps_its_event_id() -> None:
    first, again = await _ids(NotificationCreated(user_id="u", notification=NOTE))
    assert first == again
    other = NOTE.model_copy(update={"id": uuid.UUID(int=8)})
    (different,) = await _ids(NotificationCreated(user_id="u", notification=other), times=1)
    assert different != first


async def test_delivery_outcomes_have_one_id_per_notification_channel_and_outcome() -> None:
    def delivered(channel: str) -> NotificationDelivered:
        return NotificationDelivered(
            notification_id=NOTE.id, user_id="u", channel=channel, delivered_at=T0
        )

    email, email_again = await _ids(delivered("email"))
    (push,) = await _ids(delivered("push"), times=1)
    failed = NotificationFailed(notification_id=NOTE.id, user_id="u", channel="email",
                                error="550", attempts=5, failed_at=T0)  # fmt: skip
    (email_failed,) = await _ids(failed, times=1)
    assert email == email_again
    assert len({email, push, email_failed}) == 3
