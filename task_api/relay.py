"""The outbox relay: publishes committed outbox rows to Kafka, in order, at least once.

Woken right after commit (in-process signal, and Postgres LISTEN/NOTIFY for other
instances), with a slow poll as a safety net. Rows are marked published only from the
delivery report; when the broker is down rows wait and the relay backs off.

The relay has its own database connection rather than a slot in the API's pool: under
load, waiting for a pooled connection behind the requests was most of the publish lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from opentelemetry import trace
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from events.errors import PublishError
from events.producer import AsyncProducer
from observability.messaging import producer_span
from observability.propagation import extract_context
from runtime.heartbeat import beat
from task_api.db import outbox, relay_store
from task_api.metrics import TaskMetrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer("task_api.relay")

ProducerFactory = Callable[[], AsyncProducer]
BACKLOG_GAUGE_INTERVAL = timedelta(seconds=5)
# Producer overrides for the relay: it already batches (a whole claim is produced before
# it awaits), so lingering would only add publish lag.
RELAY_PRODUCER = {"linger.ms": 0}
# The longest the first connection to the broker is waited for (never beyond the delivery
# timeout, so the heartbeat's allowed silence covers it as it covers a publish).
WARM_UP_TIMEOUT = 5.0


class RelayError(Exception):
    """A batch could not be fully published; the relay backs off and tries again."""


class OutboxRelay:
    def __init__(
        self,
        producer_factory: ProducerFactory,
        database_url: str,
        metrics: TaskMetrics,
        batch_size: int = 500,
        poll_interval: timedelta = timedelta(seconds=1),
        max_backoff: timedelta = timedelta(seconds=5),
        retention: timedelta = timedelta(days=7),
        idempotency_ttl: timedelta = timedelta(hours=24),
        prune_interval: timedelta = timedelta(minutes=10),
        delivery_timeout: timedelta = timedelta(seconds=60),
    ) -> None:
        self._producer_factory = producer_factory
        self._producer: AsyncProducer | None = None
        self._database_url = database_url
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval.total_seconds()
        self._max_backoff = max_backoff.total_seconds()
        self._retention = retention
        self._idempotency_ttl = idempotency_ttl
        self._prune_interval = prune_interval
        self._delivery_timeout = delivery_timeout.total_seconds()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._db: asyncpg.Connection | None = None

    @property
    def producer(self) -> AsyncProducer:
        if self._producer is not None and self._producer.fatal_error is not None:
            log.warning("replacing producer after fatal error: %s", self._producer.fatal_error)
            self._discard_producer()
        if self._producer is None:
            self._producer = self._producer_factory()
        return self._producer

    def _discard_producer(self) -> None:
        if self._producer is not None:
            self._producer.abandon()
            self._producer = None

    def wake(self) -> None:
        """Publish now: called after a commit that wrote outbox rows."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self, warm_up_topic: str | None = None) -> None:
        """Publish until `stop()`; the batch in flight finishes first."""
        if warm_up_topic is not None:
            try:
                # Connect now so the first event does not pay for it (~1 s on Tansu).
                await self.producer.warm_up(
                    warm_up_topic, timeout=min(WARM_UP_TIMEOUT, self._delivery_timeout)
                )
            except Exception as exc:  # noqa: BLE001 - the broker may come later; rows wait
                log.warning("Kafka not reachable at start (events will wait): %s", exc)
        next_prune = next_gauge = datetime.now(UTC)
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.1, max=self._max_backoff),
            retry=retry_if_exception_type(Exception),
            stop=lambda _: self._stopping.is_set(),
            reraise=True,
            before_sleep=self._retrying,
        )
        try:
            while not self._stopping.is_set():
                # Liveness (run via Heartbeats.spawn): silent at most a poll wait, or one
                # publish attempt (delivery timeout) and a backoff, or a reconnect.
                beat()
                self._wake.clear()
                try:
                    published: int = await retrying(self.publish_batch)
                except Exception:  # noqa: BLE001 - only reached when stopping mid-outage
                    log.warning("relay stopped with events still unpublished (they stay queued)")
                    break
                now = datetime.now(UTC)
                if now >= next_gauge:
                    await self._measure_backlog(now)
                    next_gauge = now + BACKLOG_GAUGE_INTERVAL
                if now >= next_prune:
                    await self._prune()
                    next_prune = now + self._prune_interval
                if published >= self._batch_size:
                    continue  # more rows are waiting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
        finally:
            await self._close()

    def _retrying(self, state: RetryCallState) -> None:
        beat()  # an attempt ended (bounded by the delivery timeout): not stuck
        log.warning("outbox relay retrying after: %s", state.outcome and state.outcome.exception())

    async def connection(self) -> asyncpg.Connection:
        """The relay's own connection, (re)opened on demand, LISTENing for other writers."""
        if self._db is None or self._db.is_closed():
            self._db = await asyncpg.connect(self._database_url)
            await self._db.add_listener(outbox.NOTIFY_CHANNEL, self._on_notify)
        return self._db

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch in one transaction; returns rows published.

        Three round trips: BEGIN, the claim, and the mark sent with its COMMIT."""
        conn = await self.connection()
        await relay_store.begin(conn)
        try:
            rows = await relay_store.claim(conn, self._batch_size)
            results = await self._produce(rows) if rows else []
            delivered_at = datetime.now(UTC)
            delivered = [
                row
                for row, result in zip(rows, results, strict=True)
                if not isinstance(result, BaseException)
            ]
            await relay_store.mark_and_commit(conn, [row.id for row in delivered], delivered_at)
        except BaseException:
            with contextlib.suppress(Exception):  # a dead connection has rolled back already
                await relay_store.rollback(conn)
            raise
        if not rows:
            return 0
        self._count_published(delivered, delivered_at)
        failed = len(rows) - len(delivered)
        if failed and not delivered:
            # Nothing got through: start the next attempt on a fresh client. An idempotent
            # librdkafka producer that timed out can stay wedged (epoch bump waiting on a
            # drain) or be fatally unknown to a broker that restarted empty.
            self._discard_producer()
        if failed:
            errors = {str(r) for r in results if isinstance(r, BaseException)}
            self._metrics.outbox.publish_failures.inc(failed)
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    self._metrics.messaging.produce_errors.labels(row.topic).inc()
            raise RelayError(f"{failed} of {len(rows)} events not delivered: {'; '.join(errors)}")
        return len(rows)

    async def _produce(self, rows: list[relay_store.PendingEvent]) -> list[object]:
        """Produce the claimed rows and wait for every delivery report (an exception in
        place of each row that failed)."""
        producer = self.producer
        futures = []
        for row in rows:
            headers = list(row.headers)
            # The publish continues the trace of the request that wrote the row.
            with producer_span(
                row.topic,
                headers=headers,
                context=extract_context(row.headers),
                key=row.key,
                event_id=str(row.event_id),
                event_type=row.event_type,
                tracer=tracer,
            ):
                futures.append(producer.produce(row.topic, row.payload, row.key, headers))
        try:
            return await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), self._delivery_timeout
            )
        except TimeoutError:
            # No report at all (not even a timeout) means a wedged client: start afresh.
            self._discard_producer()
            raise RelayError("no delivery reports within the delivery timeout") from None

    def _count_published(self, rows: list[relay_store.PendingEvent], at: datetime) -> None:
        """The produced/published counters once per topic and type, the lag per event (a
        batch is tens of rows of one or two types under load)."""
        kinds = Counter((row.topic, row.event_type) for row in rows)
        for (topic, event_type), count in kinds.items():
            self._metrics.messaging.produced.labels(topic, event_type).inc(count)
            self._metrics.outbox.published_events.labels(event_type).inc(count)
        lag = self._metrics.outbox.publish_lag
        for row in rows:
            lag.observe(max((at - row.created_at).total_seconds(), 0.0))

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _measure_backlog(self, now: datetime) -> None:
        try:
            pending, _ = await relay_store.backlog(await self.connection(), now)
        except Exception as exc:  # noqa: BLE001 - a gauge must not stop publishing
            log.warning("could not measure the outbox backlog: %s", exc)
            return
        self._metrics.outbox.backlog.set(pending)

    async def _prune(self) -> None:
        now = datetime.now(UTC)
        try:
            pruned, expired = await relay_store.prune(
                await self.connection(), now, self._retention, self._idempotency_ttl
            )
        except Exception:  # noqa: BLE001 - pruning is housekeeping; publishing goes on
            log.exception("pruning the outbox failed")
            return
        if pruned or expired:
            log.info("pruned %d published outbox rows, %d idempotency keys", pruned, expired)

    async def _close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._db.close()
        if self._producer is not None:
            await self._producer.close()


__all__ = ["OutboxRelay", "PublishError", "RelayError"]
