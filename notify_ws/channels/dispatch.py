"""Delivery to external channels, off the worker's path: claim due delivery rows, send with
retries (tenacity: exponential backoff with jitter) behind a circuit breaker per channel or
host, record the outcome, publish it. A slow or broken channel only delays its own rows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from notify_ws.channels.base import Channel, Outcome, Outgoing
from notify_ws.channels.breaker import Breakers
from notify_ws.clock import Clock
from notify_ws.db import deliveries as dl
from notify_ws.db import erasure as er
from notify_ws.db import notifications as nt
from notify_ws.db import preferences as pf
from notify_ws.db.deliveries import Delivery
from notify_ws.exceptions import ChannelError, CircuitOpen
from notify_ws.metrics import Metrics
from notify_ws.settings import NotifySettings
from notify_ws.worker.outbox import Publisher
from runtime.heartbeat import beat

log = logging.getLogger(__name__)


class _Abandoned(Exception):
    """The delivery's user was erased while it waited for a retry: send nothing more."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ChannelError) and not exc.permanent and not isinstance(exc, CircuitOpen)


class Dispatcher:
    def __init__(
        self,
        pool: Any,
        channels: Mapping[str, Channel],
        breakers: Breakers,
        publisher: Publisher,
        clock: Clock,
        settings: NotifySettings,
        metrics: Metrics,
    ) -> None:
        self._pool, self._channels, self._breakers = pool, channels, breakers
        self._publisher, self._clock, self._s, self._metrics = publisher, clock, settings, metrics
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.dispatch_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """New rows may be due: look now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        # Sleep until the earliest row falls due (a retry, a digest window), or a wake-up
        # (a new notification, a delivery finished); the interval is only a safety net, so
        # an idle service does not query the database twice a second.
        interval = self._s.dispatch_poll_interval.total_seconds()
        try:
            while not stop.is_set():
                beat()  # liveness: a round at least every poll interval
                self._wake.clear()
                pause = interval
                try:
                    claimed = await self.tick()
                    if claimed >= self._s.dispatch_batch_size:
                        continue
                    pause = await self._until_next_due(interval)
                except Exception:  # noqa: BLE001 - database hiccup: try again next round
                    log.warning("dispatch round failed", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._wake.wait()
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _until_next_due(self, longest: float) -> float:
        async with self._pool.acquire() as conn:
            due = await dl.next_due(conn)
        if due is None:
            return longest
        return min(longest, max(0.0, (due - self._clock.now()).total_seconds()))

    async def tick(self) -> int:
        """Fold due digests, claim due rows and start sending them; returns rows claimed."""
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await dl.fold_digests(conn, now)
            room = self._s.dispatch_concurrency - len(self._tasks)
            free = max(1, min(self._s.dispatch_batch_size, room))
            async with conn.transaction():
                rows = await dl.claim(conn, now, self._s.dispatch_lease, free)
            if not rows:
                return 0
            notes = await nt.by_ids(conn, [nid for r in rows for nid in r.covers])
            prefs = await pf.get_many(conn, sorted({r.user_id for r in rows}))
        for row in rows:
            covered = [notes[n] for n in row.covers if n in notes]
            message = Outgoing(row.user_id, covered, prefs[row.user_id], digest=bool(row.digest_of))
            await self._slots.acquire()
            beat()  # a slot freed up: waiting for one is progress, not a hang
            task = asyncio.create_task(self._guarded(row, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    async def _guarded(self, row: Delivery, message: Outgoing) -> None:
        try:
            await self.deliver(row, message)
        except Exception:  # noqa: BLE001 - the lease expires and the row is tried again
            log.exception("delivery %s crashed", row.id)
        finally:
            self._slots.release()
            # A retry may now be due sooner than the loop planned to look again.
            self._wake.set()

    async def deliver(self, row: Delivery, message: Outgoing) -> None:
        channel = self._channels.get(row.channel)
        if channel is None or not message.notifications:
            await self._finish(row, dl.SKIPPED, row.attempts, "channel not configured")
            return
        breaker = self._breakers.get(channel.breaker_key(message))
        attempts = row.attempts
        remaining = max(1, self._s.max_attempts - attempts)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(remaining),
            wait=wait_exponential_jitter(
                multiplier=self._s.retry_initial.total_seconds(),
                max=self._s.retry_max.total_seconds(),
                jitter=self._s.retry_jitter.total_seconds(),
            ),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        outcome: Outcome = "skipped"
        try:
            async for attempt in retrying:
                with attempt:
                    if attempts > row.attempts and await self._erased(row.user_id):
                        raise _Abandoned()
                    breaker.before_call()
                    attempts += 1
                    outcome = await self._attempt(channel, message, breaker)
        except CircuitOpen as exc:
            # Not an attempt: wait for the breaker to half-open, keep the attempts budget.
            retry_at = self._clock.now() + timedelta(seconds=max(breaker.retry_in(), 0.05))
            async with self._pool.acquire() as conn:
                await dl.postpone(conn, row.id, attempts, str(exc), retry_at, self._clock.now())
            self._metrics.channels.attempt(row.channel, "postponed")
            return
        except ChannelError as exc:
            await self._finish(row, dl.FAILED, attempts, str(exc))
            return
        except _Abandoned:
            log.info("delivery %s abandoned: user erased", row.id)
            self._metrics.channels.attempt(row.channel, dl.SKIPPED)
            return
        await self._finish(
            row, dl.DELIVERED if outcome == "delivered" else dl.SKIPPED, attempts, None
        )

    async def _attempt(self, channel: Channel, message: Outgoing, breaker: Any) -> Outcome:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._s.channel_timeout.total_seconds()):
                outcome = await channel.deliver(message)
        except ChannelError as exc:
            # A permanent refusal (4xx, 5xx SMTP reply) still proves the far end is up.
            breaker.success() if exc.permanent else breaker.failure()
            self._breakers.report(breaker)
            raise
        except TimeoutError:
            breaker.failure()
            self._breakers.report(breaker)
            raise ChannelError(f"{channel.name} timed out") from None
        finally:
            duration = self._metrics.channels.duration
            duration.labels(channel.name).observe(time.perf_counter() - started)
        breaker.success()
        self._breakers.report(breaker)
        return outcome

    async def _erased(self, user_id: str) -> bool:
        async with self._pool.acquire() as conn:
            return await er.is_erased(conn, user_id)

    async def _finish(self, row: Delivery, status: str, attempts: int, error: str | None) -> None:
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            kept = await dl.finish(conn, row.id, status, attempts, error, now)
        self._metrics.channels.attempt(row.channel, status)
        if not kept:
            return  # the user was erased meanwhile: no outcome event about them
        done = Delivery(row.id, row.notification_id, row.user_id, row.channel, status, attempts,
                        row.digest_of, error)  # fmt: skip
        await self._publisher.outcome(done, now)


def channel_map(channels: Sequence[Channel]) -> dict[str, Channel]:
    return {c.name: c for c in channels}
