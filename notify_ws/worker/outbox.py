"""Publishing to `taskflow.notifications`: `notification.created` and delivery outcomes.

Both are recorded in the database first (notification rows without `published_at`,
delivery rows with `reported = false`); a sweep republishes whatever a crash left behind.
Hubs drop repeats by seq, so publishing twice is harmless and losing one is not possible.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import Message

from events.codec import Envelope, encode, new_event_id
from events.payloads import (
    NotificationBody,
    NotificationCreated,
    NotificationDelivered,
    NotificationFailed,
    Payload,
)
from events.producer import AsyncProducer
from events.topics import Topics
from notify_ws.clock import Clock
from notify_ws.db import deliveries as dl
from notify_ws.db import notifications as nt
from notify_ws.db.deliveries import Delivery
from notify_ws.db.notifications import Notification
from notify_ws.metrics import Metrics
from observability.messaging import producer_span
from observability.propagation import context_from_traceparent

log = logging.getLogger(__name__)


# Fixed namespace of the deterministic event ids below (changing it changes every id).
EVENT_IDS = uuid.UUID("9b0f3c52-7d1e-4a8b-9f65-3c2e71d04a6e")


def _nothing() -> None:
    pass


def event_id(payload: Payload) -> str:
    """The same id every time one notification's event is (re)published, so a sweep's
    re-send is recognisably a duplicate (the audit store keeps each event id once)."""
    if isinstance(payload, NotificationCreated):
        return created_event_id(payload.notification.id)
    if isinstance(payload, NotificationDelivered | NotificationFailed):
        name = f"{payload.event_type}/{payload.notification_id}/{payload.channel}"
    else:
        return new_event_id()
    return str(uuid.uuid5(EVENT_IDS, name))


def created_event_id(notification_id: uuid.UUID) -> str:
    """The id of the `notification.created` event of one notification."""
    return str(uuid.uuid5(EVENT_IDS, f"notification.created/{notification_id}"))


class Publisher:
    def __init__(
        self,
        producer: AsyncProducer,
        topics: Topics,
        source: str,
        pool: Any,
        clock: Clock,
        metrics: Metrics | None = None,
        mark_interval: timedelta = timedelta(0),
    ) -> None:
        self._producer, self._topics, self._source = producer, topics, source
        self._pool, self._clock = pool, clock
        self._metrics = metrics or Metrics()
        # Confirmed publishes are recorded (`published_at`) at most every `mark_interval`
        # and whenever the worker goes idle (`flush_marks`): at 50 changes/s one UPDATE a
        # change was a fifth of the worker's statements. A mark that a crash loses only
        # makes the sweep publish that notification again, which hubs drop by seq and the
        # audit store by event id; the interval stays well under the sweep's grace.
        self._mark_interval = mark_interval.total_seconds()
        self._unmarked: list[uuid.UUID] = []
        self._next_mark = 0.0

    def _send(
        self, payload: Payload, user_id: str, subject: str, traceparent: str | None
    ) -> asyncio.Future[Message]:
        """Publish inside a PRODUCER span whose parent is `traceparent` (the span of the event
        that caused the notification) or, without one, the current span; the span's own
        context goes into the headers, so the hub's `websocket send` continues the trace."""
        topic = self._topics.notifications
        headers: list[tuple[str, bytes]] = [("ce_type", payload.event_type.encode())]
        parent = context_from_traceparent(traceparent) if traceparent else None
        envelope = Envelope(
            data=payload, source=self._source, subject=subject, user_id=user_id,
            id=event_id(payload), time=self._clock.now(), traceparent=traceparent,
        )  # fmt: skip
        with producer_span(
            topic, headers=headers, context=parent, key=user_id, event_id=envelope.id,
            event_type=payload.event_type, source=self._source, subject=subject,
        ):  # fmt: skip
            return self._producer.produce(
                topic, encode(envelope), key=user_id.encode(), headers=list(headers)
            )

    def _count(self, payloads: Sequence[Payload], results: Sequence[object]) -> None:
        """Count acknowledged publishes and failed ones (results of gather(return_exceptions))."""
        topic, messaging = self._topics.notifications, self._metrics.messaging
        for payload, result in zip(payloads, results, strict=True):
            if isinstance(result, Message):
                messaging.event_produced(topic, payload.event_type)
            else:
                messaging.produce_failed(topic)

    async def created(self, notes: Sequence[Notification]) -> None:
        """Publish `notification.created` for each and mark the confirmed ones published."""
        if not notes:
            return
        payloads = [
            NotificationCreated(user_id=n.user_id, notification=NotificationBody(**n.body_json()))
            for n in notes
        ]
        futures = [
            self._send(p, n.user_id, str(n.task_id or n.id), n.traceparent)
            for p, n in zip(payloads, notes, strict=True)
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        self._count(payloads, results)
        confirmed = [n.id for n, r in zip(notes, results, strict=True) if isinstance(r, Message)]
        if not confirmed:
            # Nothing got through: the next publish starts on a fresh client (a producer
            # whose messages timed out while the broker was unreachable can stay wedged).
            self._producer.renew()
        if len(confirmed) < len(notes):
            log.warning("%d notification.created not confirmed; the sweep will retry",
                        len(notes) - len(confirmed))  # fmt: skip
        self._unmarked += confirmed
        if time.monotonic() >= self._next_mark:
            await self.flush_marks()

    async def flush_marks(self) -> None:
        """Record every publish confirmed since the last flush, in one UPDATE."""
        if not self._unmarked:
            return
        ids, self._unmarked = self._unmarked, []
        self._next_mark = time.monotonic() + self._mark_interval
        try:
            async with self._pool.acquire() as conn:
                await nt.mark_published(conn, ids, self._clock.now())
        except BaseException:
            self._unmarked[:0] = ids  # the next flush tries again
            raise

    async def outcome(self, delivery: Delivery, at: datetime) -> None:
        """Publish delivered/failed for every notification the delivery carried."""
        payloads: list[Payload] = []
        for nid in delivery.covers:
            if delivery.status == dl.DELIVERED:
                payloads.append(NotificationDelivered(
                    notification_id=nid, user_id=delivery.user_id,
                    channel=delivery.channel, delivered_at=at,
                ))  # fmt: skip
            elif delivery.status == dl.FAILED:
                payloads.append(NotificationFailed(
                    notification_id=nid, user_id=delivery.user_id,
                    channel=delivery.channel,
                    error=delivery.last_error or "failed", attempts=delivery.attempts,
                    failed_at=at,
                ))  # fmt: skip
        try:
            results = await asyncio.gather(
                *(self._send(p, delivery.user_id, str(delivery.covers[0]), None) for p in payloads),
                return_exceptions=True,
            )
        except Exception as exc:  # noqa: BLE001 - the sweep retries; the row says unreported
            log.warning("delivery outcome %s not published: %s", delivery.id, exc)
            return
        self._count(payloads, results)
        if failed := next((r for r in results if not isinstance(r, Message)), None):
            log.warning("delivery outcome %s not published: %s", delivery.id, failed)
            return
        async with self._pool.acquire() as conn:
            await dl.mark_reported(conn, delivery.id)

    async def sweep(
        self, grace_seconds: float, limit: int = 1000, progress: Callable[[], None] = _nothing
    ) -> int:
        """Republish what a crash or a broker outage left unpublished; returns how many.
        `progress` is called after each publish (each waits up to the delivery timeout)."""
        now = self._clock.now()
        before = datetime.fromtimestamp(now.timestamp() - grace_seconds, tz=now.tzinfo)
        async with self._pool.acquire() as conn:
            notes = await nt.unpublished(conn, before, limit)
            rows = await dl.unreported(conn, before, limit)
        await self.created(notes)
        progress()
        for row in rows:
            await self.outcome(row, now)
            progress()
        return len(notes) + len(rows)
