"""An asyncio-friendly wrapper over confluent-kafka's `Producer`.

`AIOProducer` refuses headers, so this keeps the normal producer and a poll thread that
resolves asyncio futures from delivery reports (`tech-notes.md`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from events.errors import PublishError

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes | str]]


class AsyncProducer:
    """Produce with headers and await each delivery report."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._producer = Producer(config)
        self._running = True
        self._fatal: KafkaError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[Message]] = set()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        while self._running:
            try:
                # poll returns as soon as it has served a delivery report: the timeout only
                # sets how often an idle thread wakes, and how long close() waits for it.
                self._producer.poll(0.2)
            except KafkaException as exc:
                # A fatal error (e.g. the broker forgot our producer id) ends this producer:
                # no delivery report will ever come for what is queued, so fail it all now.
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                log.error("producer failed: %s", exc)
                if err is None or err.fatal():
                    self._fatal = err or KafkaError(KafkaError._FATAL, str(exc), fatal=True)
                    if self._loop is not None:
                        self._loop.call_soon_threadsafe(self._fail_pending, str(exc))
                    return

    def _fail_pending(self, reason: str) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(PublishError(f"producer failed: {reason}"))
        self._pending.clear()

    @property
    def fatal_error(self) -> KafkaError | None:
        """Set when librdkafka raised a fatal error: the producer must be replaced."""
        return self._fatal

    async def warm_up(self, topic: str, timeout: float = 10.0) -> None:
        """Fetch metadata so the first real produce does not pay for connecting."""
        await asyncio.to_thread(self._producer.list_topics, topic, timeout)

    async def check(self, timeout: float = 2.0) -> None:
        """Raise if the broker cannot answer a metadata request (readiness probe)."""
        await asyncio.to_thread(self._producer.list_topics, None, timeout)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Message]:
        """Queue one message; the future resolves on delivery or fails with `PublishError`."""
        loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()
        if self._fatal is not None:
            future.set_exception(PublishError(f"producer failed: {self._fatal.str()}"))
            return future
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None and err.fatal():
                self._fatal = err
            loop.call_soon_threadsafe(_settle, future, err, msg)

        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=list(headers or ()),
                    on_delivery=on_delivery,
                )
                return future
            except BufferError:
                # Local queue full: let the poll thread drain delivery reports, then retry.
                self._producer.poll(0.01)
            except KafkaException as exc:
                err = exc.args[0]
                if isinstance(err, KafkaError) and err.fatal():
                    self._fatal = err
                future.set_exception(PublishError(str(exc)))
                return future

    async def flush(self, timeout: float = 10.0) -> int:
        """Wait for queued messages; returns how many are still undelivered."""
        return int(await asyncio.to_thread(self._producer.flush, timeout))

    def renew(self) -> None:
        """Go on with a new client: an idempotent librdkafka producer whose messages timed
        out (a broker that stopped answering) can stay wedged after the broker is back.
        What is pending on the old one fails now (callers re-send from their database)."""
        old = self._producer
        self._producer = Producer(self._config)  # the poll thread polls the new one
        self._fatal = None
        self._fail_pending("producer renewed")
        old.purge()

    def abandon(self) -> None:
        """Stop polling without flushing: for a client being replaced after a failure."""
        self._running = False
        self._fail_pending("producer abandoned")

    async def close(self, timeout: float = 10.0) -> None:
        """Flush, then stop the poll thread."""
        if self._fatal is not None:
            self._running = False
            return
        remaining = await self.flush(timeout)
        if remaining:
            log.warning("producer closed with %d undelivered messages", remaining)
        self._running = False
        await asyncio.to_thread(self._thread.join, 5.0)


def _settle(future: asyncio.Future[Message], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(msg)
    else:
        future.set_exception(PublishError(err.str()))
