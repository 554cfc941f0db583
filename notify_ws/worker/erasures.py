"""Publishing `user.erasure.applied` (service "notifications") on `taskflow.notifications`.

The worker records each erasure (`erased_users`, `published_at` NULL) in the transaction
that deletes the user's data; what is unconfirmed is published right after that commit and
again by the service's outbox sweep, so a crash or a broker outage only delays it. The
event id derives from the erasure id and the service: a re-send is a duplicate that
consumers (the audit store) recognise.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Message

from events.codec import Envelope, encode
from events.payloads import UserErasureApplied
from events.producer import AsyncProducer
from events.topics import Topics
from notify_ws.clock import Clock
from notify_ws.db import erasure as er
from notify_ws.db.erasure import Erasure
from notify_ws.metrics import Metrics
from notify_ws.worker.outbox import EVENT_IDS
from observability.messaging import producer_span
from observability.propagation import context_from_traceparent

log = logging.getLogger(__name__)
SERVICE = "notifications"


def applied_event_id(erasure_id: uuid.UUID, service: str = SERVICE) -> str:
    """The same id for every (re)publication of one service's part of one erasure."""
    return str(uuid.uuid5(EVENT_IDS, f"user.erasure.applied/{erasure_id}/{service}"))


class ErasurePublisher:
    def __init__(
        self,
        producer: AsyncProducer,
        topics: Topics,
        source: str,
        pool: Any,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._producer, self._topic, self._source = producer, topics.notifications, source
        self._pool, self._clock, self._metrics = pool, clock, metrics
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[int]] = set()

    def wake(self, _erased: Sequence[Erasure] = ()) -> None:
        """An erasure was just committed (the processor's `on_erased`): publish it now,
        off the worker's path (the sweep retries whatever this does not get through)."""
        task = asyncio.get_running_loop().create_task(self._publish_quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_quietly(self) -> int:
        try:
            return await self.publish_pending()
        except Exception:  # noqa: BLE001 - database or broker away: the sweep retries
            log.warning("publishing erasures failed", exc_info=True)
            return 0

    def _send(self, erasure: Erasure) -> asyncio.Future[Message]:
        payload = UserErasureApplied(
            user_id=erasure.user_id, erasure_id=erasure.erasure_id, service=SERVICE,
            outcome="completed", applied_at=erasure.erased_at,
        )  # fmt: skip
        event_id, user = applied_event_id(erasure.erasure_id), erasure.user_id
        headers: list[tuple[str, bytes]] = [("ce_type", payload.event_type.encode())]
        parent = context_from_traceparent(erasure.traceparent) if erasure.traceparent else None
        envelope = Envelope(
            data=payload, source=self._source, subject=user, user_id=user, id=event_id,
            time=self._clock.now(), traceparent=erasure.traceparent,
        )  # fmt: skip
        with producer_span(
            self._topic, headers=headers, context=parent, key=user, event_id=event_id,
            event_type=payload.event_type, source=self._source, subject=user,
        ):  # fmt: skip
            return self._producer.produce(
                self._topic, encode(envelope), key=user.encode(), headers=list(headers)
            )

    async def publish_pending(self, limit: int = 500) -> int:
        """Publish every unconfirmed erasure; returns how many the broker confirmed."""
        async with self._lock:
            return await self._publish(limit)

    async def _publish(self, limit: int) -> int:
        async with self._pool.acquire() as conn:
            pending = await er.unpublished(conn, None, limit)
        if not pending:
            return 0
        results = await asyncio.gather(*(self._send(e) for e in pending), return_exceptions=True)
        messaging = self._metrics.messaging
        done = []
        for erasure, result in zip(pending, results, strict=True):
            if isinstance(result, Message):
                messaging.event_produced(self._topic, UserErasureApplied.event_type)
                done.append(erasure)
            else:
                messaging.produce_failed(self._topic)
                log.warning("user.erasure.applied for %s not confirmed: %s; retried later",
                            erasure.erasure_id, result)  # fmt: skip
        async with self._pool.acquire() as conn:
            await er.mark_published(conn, done, self._clock.now())
        return len(done)
