"""The worker loop: `notify-worker` group on tasks + reminders; commit only after durable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from events.codec import decode
from events.dlq import dead_letter
from events.errors import DecodeError
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from events.quiet import QuietFetch
from notify_ws.db.notifications import Notification
from notify_ws.metrics import Metrics
from notify_ws.settings import NotifySettings
from notify_ws.worker.offsets import PendingOffsets
from notify_ws.worker.outbox import Publisher
from notify_ws.worker.processor import TRANSIENT, Item, Processor
from observability.messaging import consumer_span, event_attributes
from observability.propagation import current_traceparent
from runtime.heartbeat import beat

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        kafka: KafkaSettings,
        settings: NotifySettings,
        processor: Processor,
        publisher: Publisher,
        producer: AsyncProducer,
        metrics: Metrics,
        on_created: Callable[[], None],
    ) -> None:
        self._kafka, self._s = kafka, settings
        self._processor, self._publisher, self._producer = processor, publisher, producer
        self._metrics, self._on_created = metrics, on_created
        self._consumer: Any = None
        self._pending = PendingOffsets(settings.worker_commit_interval)
        self.ready = asyncio.Event()
        # Set once the group has given this worker its partitions (the readiness check).
        self.assigned = asyncio.Event()
        # Called with the notifications of a batch right after its transaction commits,
        # before they are published: the service hands them to this process's hub.
        self.on_committed: Callable[[Sequence[Notification]], None] = _nothing

    async def run(self, stop: asyncio.Event) -> None:
        topics = self._kafka.topics
        overrides: dict[str, Any] = {
            "fetch.wait.max.ms": self._kafka.fetch_wait_ms(self._s.worker_fetch_wait_ms)
        }
        if self._s.worker_session_timeout_ms is not None:
            overrides["session.timeout.ms"] = self._s.worker_session_timeout_ms
            overrides["heartbeat.interval.ms"] = max(100, self._s.worker_session_timeout_ms // 6)
        consumer = Consumer(self._kafka.consumer(self._s.worker_group, **overrides))
        loop = asyncio.get_running_loop()

        quiet = QuietFetch(
            consumer,
            quiet_after=self._s.worker_quiet_after.total_seconds(),
            check_every=self._kafka.quiet_check(self._s.worker_quiet_check).total_seconds(),
        )

        def on_assign(_consumer: Any, _partitions: list[TopicPartition]) -> None:
            # librdkafka calls this in the poll thread.
            quiet.assigned()
            loop.call_soon_threadsafe(self.assigned.set)

        def on_revoke(revoked_from: Any, partitions: list[TopicPartition]) -> None:
            # In the poll thread, while the loop waits for that poll: no batch is running.
            # What was processed on the partitions leaving is committed before they go.
            self._commit_now(revoked_from, self._pending.take(partitions))

        consumer.subscribe(
            [topics.tasks, topics.reminders], on_assign=on_assign, on_revoke=on_revoke
        )
        self._consumer = consumer
        self.ready.set()
        next_lag = 0.0
        batch, timeout = self._s.worker_batch_size, self._s.worker_poll_timeout.total_seconds()
        try:
            while not stop.is_set():
                beat()  # liveness: once a round, at least once per poll timeout
                msgs = await asyncio.to_thread(quiet.poll, batch, timeout)
                if msgs:
                    await self._handle(consumer, msgs, stop)
                else:
                    # Idle: what a batch left uncommitted or unmarked (not yet due then)
                    # goes now.
                    await self._publisher.flush_marks()
                    if self._pending:
                        await self._commit(consumer, self._pending.take())
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + self._s.lag_interval.total_seconds()
                    await asyncio.to_thread(self._record_lag, consumer)
        finally:
            self._consumer = None
            with contextlib.suppress(Exception):  # unmarked ones are swept again
                await self._publisher.flush_marks()
            if self._pending:
                await self._commit(consumer, self._pending.take())
            await asyncio.to_thread(consumer.close)

    async def _handle(self, consumer: Any, msgs: Sequence[Message], stop: asyncio.Event) -> None:
        started = time.perf_counter()
        # One CONSUMER span per message, parented by its producer (Kafka headers), all open
        # while the batch is processed in one transaction. Each notification remembers the
        # traceparent of its event's span, so notification.created continues that trace.
        with ExitStack() as spans:
            good: list[Item] = []
            bad: list[tuple[Message, str]] = []
            offsets: dict[tuple[str, int], int] = {}
            types: list[tuple[str, str]] = []
            for msg in msgs:
                if msg.error() is not None:
                    log.warning("consumer error: %s", msg.error())
                    continue
                topic, headers = msg.topic() or "", _headers(msg)
                offsets[(topic, msg.partition() or 0)] = (msg.offset() or 0) + 1
                span = spans.enter_context(consumer_span(
                    topic, headers=headers, partition=msg.partition(), offset=msg.offset(),
                    group=self._s.worker_group, key=msg.key(), event_type=_ce_type(headers),
                ))  # fmt: skip
                try:
                    envelope = decode(msg.value())
                except DecodeError as exc:
                    bad.append((msg, f"DecodeError: {exc}"))
                    types.append((topic, _ce_type(headers) or "unknown"))
                    continue
                span.set_attributes(event_attributes(
                    event_id=envelope.id, event_type=envelope.type,
                    source=envelope.source, subject=envelope.subject,
                ))  # fmt: skip
                types.append((topic, envelope.type))
                good.append(Item(envelope, current_traceparent(), msg))
            if not offsets:
                return
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(TRANSIENT),
                wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    if stop.is_set() and attempt.retry_state.attempt_number > 1:
                        return  # shutting down mid-outage: no commit, redelivered later
                    result = await self._processor.process(good)
            self.on_committed(result.created)
            bad += [(ref, why) for ref, why in result.failed]
            await self._dead_letters(bad)
            seconds = time.perf_counter() - started
            for topic, event_type in types:
                self._metrics.messaging.event_consumed(topic, event_type, seconds)
            for note in result.created:
                self._metrics.notifications.labels(note.kind).inc()
            if result.deliveries:
                # Only rows for email, push or webhook give the dispatcher work; an in-app
                # notification alone would wake it for two empty transactions.
                self._on_created()
            await self._publisher.created(result.created)
            self._pending.add(offsets)
            if self._pending.due():
                await self._commit(consumer, self._pending.take())

    async def _dead_letters(self, bad: Sequence[tuple[Message, str]]) -> None:
        if not bad:
            return
        dlq = self._kafka.topics.dlq
        futures = [dead_letter(self._producer, dlq, m, self._s.worker_group, why) for m, why in bad]
        # A DLQ write that fails must not be skipped over: raising keeps the offsets
        # uncommitted, so the batch comes back.
        await asyncio.gather(*futures)
        for msg, why in bad:
            log.warning("dead-lettered %s[%s]@%s: %s", msg.topic(), msg.partition(),
                        msg.offset(), why)  # fmt: skip
            reason = "decode" if why.startswith("DecodeError") else "processing"
            self._metrics.messaging.dead_letter(msg.topic() or "", reason)

    async def _commit(self, consumer: Any, offsets: list[TopicPartition]) -> None:
        await asyncio.to_thread(self._commit_now, consumer, offsets)

    @staticmethod
    def _commit_now(consumer: Any, offsets: list[TopicPartition]) -> None:
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Lost the partitions in a rebalance: the new owner re-reads, dedupe absorbs it.
            log.warning("offset commit failed: %s", exc)

    def _record_lag(self, consumer: Any) -> None:
        try:
            assigned = consumer.assignment()
            if not assigned:
                return
            committed = consumer.committed(assigned, timeout=2.0)
            for tp in committed:
                _, high = consumer.get_watermark_offsets(tp, timeout=2.0, cached=False)
                lag = high - tp.offset if tp.offset >= 0 else high
                self._metrics.lag.set(self._s.worker_group, tp.topic, tp.partition, max(lag, 0))
        except KafkaException as exc:
            log.debug("lag not measured: %s", exc)


def _nothing(_notes: Sequence[Notification]) -> None:
    return None


def _headers(msg: Message) -> list[tuple[str, Any]]:
    raw = msg.headers() or []
    return list(raw.items()) if isinstance(raw, dict) else list(raw)


def _ce_type(headers: Sequence[tuple[str, Any]]) -> str | None:
    for key, value in headers:
        if key == "ce_type" and value:
            # Any producer can set headers: a non-UTF-8 one must not stop the worker.
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None
