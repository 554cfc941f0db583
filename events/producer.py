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
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        while self._running:
            self._producer.poll(0.05)

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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()

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

    async def close(self, timeout: float = 10.0) -> None:
        """Flush, then stop the poll thread."""
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
