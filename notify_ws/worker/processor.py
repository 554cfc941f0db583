"""Decide, then persist: one event becomes at most one notification plus its delivery rows,
in one transaction with the task-version check and the dedupe key. `user.erased` deletes
the user's data and records the erasure in the same transaction; any event of an erased
user is dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from events.codec import Envelope
from events.payloads import Payload, TaskState, UserErased, UserErasureApplied
from notify_ws.clock import Clock
from notify_ws.db import batch_state
from notify_ws.db import deliveries as dl
from notify_ws.db import erasure as er
from notify_ws.db import notifications as nt
from notify_ws.db.erasure import Erasure
from notify_ws.db.notifications import Notification
from notify_ws.decide import Draft, draft, notifies, routes, user_of

log = logging.getLogger(__name__)

# Errors that say "the database is unavailable", not "this message is bad": retry, never DLQ.
# Deadlocks and serialization failures (two workers during a rebalance) also just retry.
TRANSIENT = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
             asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
             asyncpg.DeadlockDetectedError, asyncpg.SerializationError)  # fmt: skip


class Unprocessable(Exception):
    """A decodable event this service cannot act on (e.g. no user)."""


@dataclass(frozen=True, slots=True)
class Item:
    envelope: Envelope[Payload]
    traceparent: str | None
    ref: Any  # the Kafka message, handed back on failure


@dataclass
class Result:
    created: list[Notification]
    failed: list[tuple[Any, str]]
    ignored: int
    # Erasures recorded by this batch, to publish as `user.erasure.applied`.
    erased: list[Erasure] = field(default_factory=list)
    # Delivery rows (email, push, webhook) this batch added: the dispatcher has work.
    deliveries: int = 0


def _nothing(_erased: Sequence[Erasure]) -> None:
    return None


class Processor:
    def __init__(
        self,
        pool: Any,
        clock: Clock,
        on_erased: Callable[[Sequence[Erasure]], None] = _nothing,
    ) -> None:
        self._pool, self._clock = pool, clock
        # Called after the commit with the erasures just recorded (their outbox rows).
        self._on_erased = on_erased

    async def process(self, items: Sequence[Item]) -> Result:
        """All items in one transaction; if that fails for a reason other than the database
        being down, each item on its own so one bad event cannot hold back the others."""
        try:
            result = await self._in_one_transaction(items)
        except TRANSIENT:
            raise
        except Exception:  # noqa: BLE001 - isolate the bad item(s) below
            log.warning("batch of %d failed; processing one by one", len(items), exc_info=True)
        else:
            if result.erased:
                self._on_erased(result.erased)
            return result
        result = Result([], [], 0)
        for item in items:
            try:
                one = await self._in_one_transaction([item])
            except TRANSIENT:
                raise
            except Exception as exc:  # noqa: BLE001 - goes to the DLQ with its reason
                result.failed.append((item.ref, f"{type(exc).__name__}: {exc}"))
                continue
            result.created += one.created
            result.ignored += one.ignored
            result.erased += one.erased
            result.deliveries += one.deliveries
        if result.erased:
            self._on_erased(result.erased)
        return result

    async def _in_one_transaction(self, items: Sequence[Item]) -> Result:
        result = Result([], [], 0)
        users = sorted({user_of(i.envelope) for i in items})
        task_ids = sorted(
            {i.envelope.data.id for i in items if isinstance(i.envelope.data, TaskState)}
        )
        erasing = [i for i in items if isinstance(i.envelope.data, UserErased)]
        async with self._pool.acquire() as conn, conn.transaction():
            to_erase = {user_of(i.envelope) for i in erasing}
            await er.lock_users(conn, users, to_erase)
            # After the locks: an erasure committed meanwhile is seen here.
            state = await batch_state.load(conn, users, task_ids)
            erased, prefs, applied = state.erased | to_erase, state.prefs, state.versions
            latest = dict(applied)
            drafts: list[tuple[Draft, str | None]] = []
            for item in items:
                envelope, data = item.envelope, item.envelope.data
                user = user_of(envelope)
                if not user:
                    raise Unprocessable("event names no user")
                if user in erased or isinstance(data, UserErasureApplied):
                    # No resurrection: whatever of an erased user arrives (before or after
                    # `user.erased` in this batch) is dropped; `user.erasure.applied` of the
                    # reminder flow (on taskflow.reminders) is not for this service.
                    result.ignored += 1
                    continue
                if isinstance(data, TaskState):
                    if data.version <= latest.get(data.id, 0):
                        result.ignored += 1  # an older (or the same) version was applied
                        continue
                    latest[data.id] = data.version
                made = draft(envelope)
                if made is None or not notifies(prefs[user]):
                    result.ignored += 1
                    continue
                drafts.append((made, item.traceparent))
            now = self._clock.now()
            newer = {t: v for t, v in latest.items() if v > applied.get(t, 0)}
            notes = await nt.insert_many(conn, drafts, now, newer)
            result.ignored += len(drafts) - len(notes)  # duplicate source events
            rows = []
            for note in notes:
                for route in routes(prefs[note.user_id], now):
                    status = dl.DEFERRED if route.digest else dl.PENDING
                    rows.append((note.id, note.user_id, route.channel, status,
                                 route.deliver_at or now))  # fmt: skip
            await dl.add(conn, rows, now)
            result.deliveries = len(rows)
            result.created = notes
            for item in erasing:
                result.erased += await self._erase(conn, item, now)
        return result

    async def _erase(self, conn: Any, item: Item, now: datetime) -> list[Erasure]:
        data = item.envelope.data
        assert isinstance(data, UserErased)  # noqa: S101 - filtered by the caller
        erasure = Erasure(data.user_id, data.erasure_id, data.requested_at, now, item.traceparent)
        if await er.erase(conn, erasure):
            log.info("erased user %s (erasure %s)", data.user_id, data.erasure_id)
            return [erasure]
        return []  # the same erasure again: applied and published before
