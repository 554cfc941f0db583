"""Which tasks changed, on any instance: the task topic read from its end by this process.

Every accepted change of any instance reaches `taskflow.tasks` through the outbox relay
(key = task id), so one reader per process sees them all without a new channel. It assigns
every partition at its high watermark (no consumer group to join, nothing committed) and
starts on the first resource subscription, so processes without subscribers pay nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from events.kafka import KafkaSettings

log = logging.getLogger(__name__)

# Not a change: a rebuild of consumers' state (api.md); subscribers are not told.
NOT_A_CHANGE = {b"task.snapshot"}
POLL_SECONDS = 0.2


class TaskChangeFeed:
    """Calls `on_change(task_id)` on the event loop for each task event published from now."""

    def __init__(self, kafka: KafkaSettings, on_change: Callable[[str], None]) -> None:
        self._kafka, self._on_change = kafka, on_change
        self._started: asyncio.Future[None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def ensure_started(self) -> None:
        """Start reading (once); returns when every partition is positioned at its end."""
        failed = self._started is not None and self._started.done() and self._started.exception()
        if self._started is None or failed:
            loop = asyncio.get_running_loop()
            self._started = loop.create_future()
            self._thread = threading.Thread(
                target=self._run, args=(loop, self._started), name="mcp-task-feed", daemon=True
            )
            self._thread.start()
        await asyncio.shield(self._started)

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    def _run(self, loop: asyncio.AbstractEventLoop, started: asyncio.Future[None]) -> None:
        topic = self._kafka.topics.tasks
        conf = self._kafka.consumer(f"taskflow-mcp-feed-{uuid.uuid4().hex}")
        consumer = Consumer(conf)
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            positions = []
            for partition in partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                positions.append(TopicPartition(topic, partition, high))
            consumer.assign(positions)
        except (KafkaException, KeyError) as exc:
            log.warning("task change feed could not start: %s", exc)
            loop.call_soon_threadsafe(_settle, started, exc)
            consumer.close()
            return
        loop.call_soon_threadsafe(_settle, started, None)
        try:
            while not self._stop.is_set():
                message = consumer.poll(POLL_SECONDS)
                if message is None or message.error() is not None:
                    continue
                headers = dict(message.headers() or [])
                key = message.key()
                if key is None or headers.get("ce_type") in NOT_A_CHANGE:
                    continue
                task_id = key.decode() if isinstance(key, bytes) else str(key)
                with contextlib.suppress(RuntimeError):  # the loop closed while stopping
                    loop.call_soon_threadsafe(self._on_change, task_id)
        finally:
            consumer.close()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(RuntimeError(f"the task change feed could not start: {error}"))
