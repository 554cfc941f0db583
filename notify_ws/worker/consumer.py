"""The worker loop: `notify-worker` group on tasks + reminders; commit only after durable."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from opentelemetry import trace
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from events.codec import decode
from events.dlq import dead_letter
from events.errors import DecodeError
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from notify_ws.hub.feed import fetch
from notify_ws.metrics import Metrics
from notify_ws.settings import NotifySettings
from notify_ws.tracing import current_traceparent, extract, tracer
from notify_ws.worker.outbox import Publisher
from notify_ws.worker.processor import TRANSIENT, Item, Processor

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
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        topics = self._kafka.topics
        overrides: dict[str, Any] = {}
        if self._s.worker_session_timeout_ms is not None:
            overrides["session.timeout.ms"] = self._s.worker_session_timeout_ms
            overrides["heartbeat.interval.ms"] = max(100, self._s.worker_session_timeout_ms // 6)
        consumer = Consumer(self._kafka.consumer(self._s.worker_group, **overrides))
        consumer.subscribe([topics.tasks, topics.reminders])
        self._consumer = consumer
        self.ready.set()
        next_lag = 0.0
        try:
            while not stop.is_set():
                msgs = await asyncio.to_thread(
                    fetch, consumer, self._s.worker_batch_size,
                    self._s.worker_poll_timeout.total_seconds(),
                )  # fmt: skip
                if msgs:
                    await self._handle(consumer, msgs, stop)
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + self._s.lag_interval.total_seconds()
                    await asyncio.to_thread(self._record_lag, consumer)
        finally:
            self._consumer = None
            await asyncio.to_thread(consumer.close)

    async def _handle(self, consumer: Any, msgs: Sequence[Message], stop: asyncio.Event) -> None:
        good: list[Item] = []
        bad: list[tuple[Message, str]] = []
        offsets: dict[tuple[str, int], int] = {}
        for msg in msgs:
            if msg.error() is not None:
                log.warning("consumer error: %s", msg.error())
                continue
            offsets[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
            try:
                envelope = decode(msg.value())
            except DecodeError as exc:
                bad.append((msg, f"DecodeError: {exc}"))
                continue
            good.append(Item(envelope, _traceparent(msg), msg))
        if not offsets:
            return
        span_parent = extract(_headers(msgs[0])) if len(msgs) == 1 else None
        with tracer.start_as_current_span(
            "notify.worker.batch", context=span_parent, kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.batch.message_count": len(msgs)},
        ):  # fmt: skip
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
        bad += [(ref, why) for ref, why in result.failed]
        await self._dead_letters(bad)
        self._metrics.events.labels("notified").inc(len(result.created))
        self._metrics.events.labels("ignored").inc(result.ignored)
        self._metrics.events.labels("dead_letter").inc(len(bad))
        for note in result.created:
            self._metrics.notifications.labels(note.kind).inc()
        self._on_created()
        await self._publisher.created(result.created)
        await self._commit(consumer, offsets)

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
            self._metrics.dead_letters.labels(msg.topic() or "").inc()

    async def _commit(self, consumer: Any, offsets: dict[tuple[str, int], int]) -> None:
        parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            await asyncio.to_thread(consumer.commit, offsets=parts, asynchronous=False)
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
                self._metrics.consumer_lag.labels(
                    self._s.worker_group, tp.topic, str(tp.partition)
                ).set(max(lag, 0))
        except KafkaException as exc:
            log.debug("lag not measured: %s", exc)


def _headers(msg: Message) -> list[tuple[str, Any]]:
    raw = msg.headers() or []
    return list(raw.items()) if isinstance(raw, dict) else list(raw)


def _traceparent(msg: Message) -> str | None:
    for key, value in _headers(msg):
        if key == "traceparent" and value:
            return value.decode() if isinstance(value, bytes) else str(value)
    return current_traceparent()
