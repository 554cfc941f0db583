"""The outbox relay: publishes committed outbox rows to Kafka, in order, at least once.

A committed change's event is usually handed over by the writer (`hand_off`) and
produced at once; the relay marks it once Kafka confirms, the confirmations of up to
`MARK_DELAY` in one statement. Everything else is claimed from
the table: rows written without a record, an event whose key has an older event not yet on
its way, and whatever a crash or an outage left behind. The claim is woken right after
commit (in-process signal, and Postgres LISTEN/NOTIFY for other instances), with a slow
poll as a safety net. Rows are marked published only from the delivery report; when the
broker is down rows wait and the relay backs off.

The relay has its own database connection rather than a slot in the API's pool: under
load, waiting for a pooled connection behind the requests was most of the publish lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg
from confluent_kafka import Message
from opentelemetry import trace
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from events.errors import PublishError
from events.producer import AsyncProducer
from observability.messaging import carries_unsampled_parent, producer_span
from observability.propagation import extract_context
from runtime.heartbeat import beat
from task_api.db import outbox, relay_store
from task_api.db.relay_store import PendingEvent
from task_api.db.written import Written
from task_api.metrics import TaskMetrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer("task_api.relay")

ProducerFactory = Callable[[], AsyncProducer]
BACKLOG_GAUGE_INTERVAL = timedelta(seconds=5)
# Producer overrides for the relay: it already batches (a whole claim is produced before
# it awaits), so lingering would only add publish lag.
RELAY_PRODUCER = {"linger.ms": 0}
# How long after a claim the next writes still go to a claim rather than the hand-off.
CLAIM_TURN = 0.02
# How long a confirmed hand-off may wait for its mark, so that one statement marks the
# confirmations of a while: at 50 changes/s ~5 a statement instead of one each, which cut
# PostgreSQL's CPU per change by ~30 % (docs/performance.md, "Marks"). A crash in that
# time re-sends those events, which consumers drop by event id, as after any crash before
# a mark.
MARK_DELAY = timedelta(milliseconds=100)
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
        mark_delay: timedelta = MARK_DELAY,
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
        self._mark_delay = mark_delay.total_seconds()
        self._wake = asyncio.Event()
        self._claim_requested = False
        self._stopping = asyncio.Event()
        self._db: asyncpg.Connection | None = None
        # Handed-off rows produced and not yet marked, with the producer each went out on.
        self._in_flight: dict[int, tuple[AsyncProducer, asyncio.Future[Message]]] = {}
        self._claiming = False  # a claim is open: writes wait for the next one
        self._claimed_until = 0.0  # monotonic: the claim's turn lasts until then
        self._unconfirmed = 0  # handed-off events waiting for their delivery report
        self._confirmed: list[tuple[PendingEvent, datetime]] = []
        self._mark_due = 0.0  # monotonic: when the oldest confirmation must be marked

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
        """Claim now: called after a commit that wrote rows the relay must read back."""
        self._claim_requested = True
        self._wake.set()

    @property
    def idle(self) -> bool:
        """No claim open or within its turn, no hand-off waiting for its report: a hand-off
        now goes straight to the producer."""
        return (
            not self._claiming
            and self._unconfirmed == 0
            and time.monotonic() >= self._claimed_until
        )

    def hand_off(self, written: Written) -> None:
        """Publish what a transaction has just committed. Call it right after the commit,
        before any await: then one process produces one key's events in commit order.

        An event goes to the producer now when the relay is idle (no claim running, no
        earlier hand-off unconfirmed) and every older unpublished event of its key is
        already in flight on that same producer (an idempotent producer keeps a key's
        order); otherwise, and for rows written without a record, the claim publishes from
        the table, in order. So one change at a time skips the claim's round trips, and
        under load the claim's batches (one produce request, one mark, for many rows) take
        over: handing each of hundreds of events a second off alone cost more CPU than it
        saved (docs/performance.md, "The hand-off"). A crash before the mark leaves the row
        to the claim: a repeat, which consumers drop by event id."""
        idle = self.idle
        claim = written.unrecorded or (bool(written.events) and not idle)
        if written.events and idle and not self._stopping.is_set():
            producer = self.producer
            for item in written.events:
                if all(self._on_its_way(row, producer) for row in item.older):
                    self._send(producer, item.event)
                else:
                    claim = True
        if claim:
            self.wake()

    def _on_its_way(self, row_id: int, producer: AsyncProducer) -> bool:
        """Handed off on `producer` and not marked yet (a confirmed one counts)."""
        sent = self._in_flight.get(row_id)
        return sent is not None and sent[0] is producer

    def _send(self, producer: AsyncProducer, event: PendingEvent) -> None:
        future = _produce_one(producer, event)
        self._in_flight[event.id] = (producer, future)
        self._unconfirmed += 1
        future.add_done_callback(partial(self._delivered, event))

    def _delivered(self, event: PendingEvent, future: asyncio.Future[Message]) -> None:
        self._unconfirmed -= 1
        if future.cancelled() or future.exception() is not None:
            del self._in_flight[event.id]
            self._metrics.outbox.publish_failures.inc()
            self._metrics.messaging.produce_errors.labels(event.topic).inc()
            reason = "cancelled" if future.cancelled() else future.exception()
            log.warning("handed-off event %s not delivered (the claim retries): %s",
                        event.event_id, reason)  # fmt: skip
            self.wake()
            return
        # Stays in flight until marked: a later event of its key may still follow it.
        if not self._confirmed:
            self._mark_due = time.monotonic() + self._mark_delay
            self._wake.set()  # the loop's wait must end by then
        self._confirmed.append((event, datetime.now(UTC)))
        if len(self._confirmed) >= self._batch_size:
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
        next_claim = 0.0  # monotonic: the safety-net poll, and the first claim at once
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
                published = 0
                if self._confirmed and self._mark_is_due() and not await self._mark_confirmed():
                    self._claim_requested = True  # its retries wait the database out
                if self._claim_requested or time.monotonic() >= next_claim:
                    self._claim_requested = False
                    try:
                        published = await retrying(self.publish_batch)
                    except Exception:  # noqa: BLE001 - only reached when stopping mid-outage
                        log.warning(
                            "relay stopped with events still unpublished (they stay queued)"
                        )
                        break
                    next_claim = time.monotonic() + self._poll_interval
                now = datetime.now(UTC)
                if now >= next_gauge:
                    await self._measure_backlog(now)
                    next_gauge = now + BACKLOG_GAUGE_INTERVAL
                if now >= next_prune:
                    await self._prune()
                    next_prune = now + self._prune_interval
                if published >= self._batch_size:
                    self._claim_requested = True  # more rows are waiting
                    continue
                wake_at = min(next_claim, self._mark_due) if self._confirmed else next_claim
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(wake_at - time.monotonic(), 0.0))
        finally:
            await self._finish_hand_offs()
            await self._close()

    def _mark_is_due(self) -> bool:
        return len(self._confirmed) >= self._batch_size or time.monotonic() >= self._mark_due

    async def _mark_confirmed(self) -> bool:
        """Record the confirmed hand-offs, each at its confirmation, in one statement;
        False (and kept for the next try) when the database would not take it."""
        confirmed, self._confirmed = self._confirmed, []
        try:
            await relay_store.mark_each(
                await self.connection(), [(event.id, at) for event, at in confirmed]
            )
        except Exception as exc:  # noqa: BLE001 - the rows are in Kafka; marking waits
            self._confirmed[:0] = confirmed
            log.warning("could not mark %d published events: %s", len(confirmed), exc)
            return False
        for event, _ in confirmed:
            self._in_flight.pop(event.id, None)
        self._count_published(confirmed)
        return True

    async def _finish_hand_offs(self) -> None:
        """On the way out: wait for the events in flight (up to the delivery timeout) and
        mark the confirmed ones; the rest stay for the next start's claim."""
        await self._hand_off_reports()
        if self._confirmed:
            await self._mark_confirmed()

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
        self._claiming = True
        try:
            await self._settle_hand_offs()
            return await self._claim_and_publish(conn)
        finally:
            self._claiming = False
            # Writes that come right behind a claim go to the next one: under load the
            # claims follow each other and batch, and hand-offs wait for a lull.
            self._claimed_until = time.monotonic() + CLAIM_TURN

    async def _settle_hand_offs(self) -> None:
        """Wait for the delivery report of every event handed off before claiming.

        A claim must not send a key's next event while the one handed off before it may
        still fail: the claim's retry of the older one would then land after it. (A broker
        down for longer than the message timeout did just that: the hand-off timed out
        before the broker came back, the claimed events behind it went through.) No report
        within the delivery timeout means a wedged client: replacing it fails what it
        holds, and this claim sends those rows again, first."""
        if not await self._hand_off_reports():
            self._discard_producer()
        beat()  # a wait bounded by the delivery timeout ended; the claim's own comes next

    async def _hand_off_reports(self) -> bool:
        """Wait (up to the delivery timeout) for the delivery report of every hand-off
        still waiting for one; False when some did not come."""
        pending = [future for _, future in self._in_flight.values() if not future.done()]
        if not pending:
            return True
        _, unreported = await asyncio.wait(pending, timeout=self._delivery_timeout)
        return not unreported

    def _delivered_by_hand_off(self, row_id: int) -> bool:
        sent = self._in_flight.get(row_id)
        if sent is None or not sent[1].done():
            return False
        return not sent[1].cancelled() and sent[1].exception() is None

    async def _claim_and_publish(self, conn: asyncpg.Connection) -> int:
        await relay_store.begin(conn)
        try:
            # Rows handed off are in Kafka already (every hand-off has its report by now);
            # no hand-off starts while the claim is open, so each row goes out once. One
            # whose delivery failed is sent again here, before the rest of its key.
            claimed = await relay_store.claim(conn, self._batch_size)
            rows = [row for row in claimed if not self._delivered_by_hand_off(row.id)]
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
        self._count_published([(row, delivered_at) for row in delivered])
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

    async def _produce(self, rows: list[PendingEvent]) -> list[object]:
        """Produce the claimed rows and wait for every delivery report (an exception in
        place of each row that failed)."""
        producer = self.producer
        futures = [_produce_one(producer, row) for row in rows]
        try:
            return await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), self._delivery_timeout
            )
        except TimeoutError:
            # No report at all (not even a timeout) means a wedged client: start afresh.
            self._discard_producer()
            raise RelayError("no delivery reports within the delivery timeout") from None

    def _count_published(self, published: Sequence[tuple[PendingEvent, datetime]]) -> None:
        """The produced/published counters once per topic and type, the lag per event (a
        batch is tens of rows of one or two types under load)."""
        kinds = Counter((row.topic, row.event_type) for row, _ in published)
        for (topic, event_type), count in kinds.items():
            self._metrics.messaging.produced.labels(topic, event_type).inc(count)
            self._metrics.outbox.published_events.labels(event_type).inc(count)
        lag = self._metrics.outbox.publish_lag
        for row, at in published:
            lag.observe(max((at - row.created_at).total_seconds(), 0.0))

    def _on_notify(self, *_: object) -> None:
        self.wake()

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


def _produce_one(producer: AsyncProducer, row: PendingEvent) -> asyncio.Future[Message]:
    headers = list(row.headers)
    if carries_unsampled_parent(headers):
        # 9 requests in 10 under the shipped sampling: the headers the request wrote are
        # the ones to send, and parsing them into a context cost ~3 % of the service's CPU.
        return producer.produce(row.topic, row.payload, row.key, headers)
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
        return producer.produce(row.topic, row.payload, row.key, headers)


__all__ = ["OutboxRelay", "PublishError", "RelayError"]
