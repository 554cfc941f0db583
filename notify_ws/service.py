"""The running parts of one notification process: pool, producer, worker, dispatcher, hub
feed, read listener and outbox sweep, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from events.producer import AsyncProducer
from notify_ws.channels.base import Channel
from notify_ws.channels.breaker import Breakers
from notify_ws.channels.dispatch import Dispatcher, channel_map
from notify_ws.channels.email import SmtpEmail
from notify_ws.channels.push import WebPush
from notify_ws.channels.webhook import Webhook
from notify_ws.context import NotifyContext
from notify_ws.db import preferences as pf
from notify_ws.db.preferences import PushSubscription
from notify_ws.hub.erasures import ErasureListener
from notify_ws.hub.feed import Feed
from notify_ws.hub.local import hand_to_hub
from notify_ws.hub.reads import ReadListener
from notify_ws.hub.session import Session
from notify_ws.worker.consumer import Worker
from notify_ws.worker.erasures import ErasurePublisher
from notify_ws.worker.outbox import Publisher
from notify_ws.worker.processor import Processor
from runtime.database import create_pool
from runtime.heartbeat import Heartbeats, beat

log = logging.getLogger(__name__)
ChannelFactory = Callable[[Any], Sequence[Channel]]


def tune_gc(threshold: int) -> None:
    """Fewer, larger young-generation collections, and everything built at start-up moved
    out of the collector's way (it lives as long as the process)."""
    if threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(threshold, gen1, gen2)
        gc.freeze()


class Service:
    def __init__(
        self,
        ctx: NotifyContext,
        channels: ChannelFactory | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self._channel_factory = channels or self.default_channels
        self._monotonic = monotonic
        self.stop_event = asyncio.Event()
        # Called when a background part dies: `taskflow serve notify` stops the process so
        # its supervisor (taskflow up, Kubernetes) restarts it instead of leaving it half up.
        self.on_fatal: Callable[[], None] = lambda: None
        self._tasks: list[asyncio.Task[None]] = []
        # Liveness: each loop beats once a round (`runtime.heartbeat.beat`); /healthz names
        # one that died or stayed silent longer than `loop_max_silence`.
        self.heartbeats = Heartbeats(monotonic)
        self.producer: AsyncProducer | None = None
        self.channels: Sequence[Channel] = ()
        self.dispatcher: Dispatcher | None = None
        self.worker: Worker | None = None
        self.feed: Feed | None = None
        self.erasures: ErasurePublisher | None = None

    def default_channels(self, pool: Any) -> Sequence[Channel]:
        s = self.ctx.config.notify

        async def load(user_id: str) -> Sequence[PushSubscription]:
            async with pool.acquire() as conn:
                return await pf.subscriptions(conn, user_id)

        async def drop(sub: PushSubscription) -> None:
            async with pool.acquire() as conn:
                await pf.delete_subscription(conn, sub.user_id, sub.id)

        webhook = Webhook(s, time.time, self.ctx.webhook_targets)
        return [SmtpEmail(s), WebPush(s, load, drop), webhook]

    def _spawn(
        self, name: str, coro: Coroutine[Any, Any, None], max_silence: timedelta | None = None
    ) -> None:
        """Start a background loop with a heartbeat: watched for dying and, given
        `max_silence` (a loop with rounds), for silence."""
        task = self.heartbeats.spawn(name, max_silence, coro)
        task.add_done_callback(self._died)
        self._tasks.append(task)

    def _died(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self.stop_event.is_set():
            log.error("%s stopped", task.get_name(), exc_info=task.exception())
            self.on_fatal()

    async def start(self) -> None:
        ctx, s, kafka = self.ctx, self.ctx.config.notify, self.ctx.config.kafka
        pool = await create_pool(s.database_url, max_size=s.db_pool_size)
        ctx.pool = pool
        ctx.session = Session(pool, ctx.hub, ctx.metrics, ctx.clock)
        self.producer = AsyncProducer(kafka.producer())
        try:
            await self.producer.warm_up(kafka.topics.notifications)
        except Exception as exc:  # noqa: BLE001 - events wait in the outbox until it is back
            log.warning("Kafka not reachable at start: %s", exc)
        publisher = Publisher(
            self.producer, kafka.topics, s.source, pool, ctx.clock, ctx.metrics,
            mark_interval=s.worker_commit_interval,
        )  # fmt: skip
        self.erasures = ErasurePublisher(
            self.producer, kafka.topics, s.source, pool, ctx.clock, ctx.metrics
        )
        on_change = ctx.metrics.breaker_state

        breakers = Breakers(
            s.breaker_threshold, s.breaker_reset.total_seconds(), self._monotonic, on_change
        )
        if s.run_dispatcher:
            self.channels = self._channel_factory(pool)
            for channel in self.channels:
                await channel.start()
            self.dispatcher = Dispatcher(
                pool, channel_map(self.channels), breakers, publisher, ctx.clock, s, ctx.metrics
            )
            self._spawn("dispatcher", self.dispatcher.run(self.stop_event), s.loop_max_silence)
        if s.run_worker:
            wake = self.dispatcher.wake if self.dispatcher else (lambda: None)
            processor = Processor(pool, ctx.clock, self.erasures.wake)
            self.worker = Worker(kafka, s, processor, publisher, self.producer, ctx.metrics, wake)
            self._spawn("worker", self.worker.run(self.stop_event), s.loop_max_silence)
            self._spawn("outbox-sweep", self._sweep(publisher), s.loop_max_silence)
        if s.run_hub:
            budget = s.hub_fetch_wait_ms
            if self.worker is not None:
                # The fast path: this process's notifications skip the Kafka round trip.
                self.worker.on_committed = hand_to_hub(ctx.hub, ctx.metrics)
                budget = s.hub_fetch_wait_fast_path_ms
            self.feed = Feed(kafka, ctx.hub, ctx.metrics, kafka.fetch_wait_ms(budget))
            erased = ErasureListener(pool, ctx.hub, ctx.erased_recently)
            reads = ReadListener(s.database_url, pool, ctx.hub, erased)
            self._spawn("hub-feed", self.feed.run(self.stop_event), s.loop_max_silence)
            self._spawn("read-listener", reads.run(self.stop_event))  # event-driven
            # Accept no WebSocket before the feed has its start offsets (no gap).
            await self._ready(self.feed.ready, reads.ready)
        tune_gc(s.gc_threshold)

    async def _ready(self, *events: asyncio.Event) -> None:
        waits = [asyncio.create_task(e.wait()) for e in events]
        try:
            async with asyncio.timeout(30):
                while not all(e.is_set() for e in events):
                    done = [t for t in self._tasks if t.done()]
                    if done:
                        raise RuntimeError(f"{done[0].get_name()} failed to start") from (
                            done[0].exception()
                        )
                    await asyncio.wait(waits, timeout=0.05)
        finally:
            for w in waits:
                w.cancel()

    async def _sweep(self, publisher: Publisher) -> None:
        s = self.ctx.config.notify
        while not self.stop_event.is_set():
            beat()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.outbox_sweep_interval.total_seconds()):
                    await self.stop_event.wait()
            try:
                await publisher.sweep(s.outbox_grace.total_seconds(), progress=beat)
                if self.erasures is not None:
                    await self.erasures.publish_pending()
            except Exception:  # noqa: BLE001 - database or broker away: next round
                log.warning("outbox sweep failed", exc_info=True)

    async def stop(self) -> None:
        self.heartbeats.stop()
        self.stop_event.set()
        await self.ctx.hub.shutdown(self.ctx.config.notify.ws_close_timeout.total_seconds())
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=15)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self.channels:
            with contextlib.suppress(Exception):
                await channel.close()
        if self.producer is not None:
            await self.producer.close()
        if self.ctx.pool is not None:
            await self.ctx.pool.close()

    async def check_tasks(self) -> None:
        """Not ready when a background part (worker, feed, dispatcher...) has died."""
        dead = [t.get_name() for t in self._tasks if t.done()]
        if dead and not self.stop_event.is_set():
            raise RuntimeError(f"stopped: {', '.join(dead)}")

    async def check_database(self) -> None:
        async with self.ctx.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def check_kafka(self) -> None:
        if self.producer is None:
            raise RuntimeError("producer not started")
        await self.producer.check()

    async def check_partitions(self) -> None:
        """Start-up check: the worker's group has assigned it its partitions and the hub
        feed holds every partition of the notifications topic (ready means consuming)."""
        s, waiting = self.ctx.config.notify, []
        if s.run_worker and not (self.worker and self.worker.assigned.is_set()):
            waiting.append("worker group assignment")
        if s.run_hub and not (self.feed and self.feed.ready.is_set()):
            waiting.append("hub feed partitions")
        if waiting:
            raise RuntimeError(f"waiting for {' and '.join(waiting)}")
