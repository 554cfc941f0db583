"""Kafka -> hub: every node reads every partition of `taskflow.notifications` with assign().

It starts at the high watermarks it measured before accepting connections, so nothing
published after a client's replay snapshot can be missed; Tansu's wrong "latest" only makes
it re-read a few old messages, which the per-connection seq filter drops.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from opentelemetry import propagate, trace
from opentelemetry.context import Context

from events.consuming import poll_batch
from events.kafka import KafkaSettings
from notify_ws.hub.hub import Hub, Note
from notify_ws.metrics import Metrics
from observability.propagation import extract_context
from runtime.heartbeat import beat

log = logging.getLogger(__name__)
CREATED = b"notification.created"


class Feed:
    def __init__(
        self, kafka: KafkaSettings, hub: Hub, metrics: Metrics, fetch_wait_ms: int
    ) -> None:
        self._kafka, self._hub, self._metrics = kafka, hub, metrics
        self._fetch_wait_ms = fetch_wait_ms
        self.ready = asyncio.Event()
        self._consumer: Any = None
        # The headers the configured propagators read (OTEL_PROPAGATORS, read at import):
        # a message without any of them has no context worth extracting.
        self._context_fields = {f.lower() for f in propagate.get_global_textmap().fields}

    def _open(self) -> Any:
        # A unique group id that never commits: librdkafka wants one, the broker never sees it.
        conf = self._kafka.consumer(
            f"notify-hub-{uuid.uuid4().hex}",
            **{"fetch.wait.max.ms": self._fetch_wait_ms, "enable.partition.eof": False},
        )
        consumer = Consumer(conf)
        topic = self._kafka.topics.notifications
        meta = consumer.list_topics(topic, timeout=10)
        partitions = sorted(meta.topics[topic].partitions)
        start = []
        for p in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            start.append(TopicPartition(topic, p, max(high, 0)))
        consumer.assign(start)
        return consumer

    async def run(self, stop: asyncio.Event) -> None:
        consumer = await asyncio.to_thread(self._open)
        self.ready.set()
        # A poll returns as soon as a fetch brings data: waiting as long as the broker does
        # saves thread hops when idle and only delays noticing `stop`.
        poll = min(max(self._fetch_wait_ms, 50), 500) / 1000
        try:
            while not stop.is_set():
                beat()  # liveness: once a round, at least once per poll timeout
                # What librdkafka has already fetched is taken without a thread hop (a hop
                # cost more than a message's frames in a burst); only the wait goes to one.
                msgs = consumer.consume(1000, 0)
                if msgs:
                    await asyncio.sleep(0)  # let the frames of the previous round go out
                else:
                    msgs = await asyncio.to_thread(poll_batch, consumer, 1000, poll)
                for msg in msgs:
                    if msg.error() is None:
                        self._forward(msg)
        finally:
            await asyncio.to_thread(consumer.close)

    def _forward(self, msg: Any) -> None:
        ce_type, carried = None, False
        headers = msg.headers()
        for key, value in headers or ():
            if key == "ce_type":
                ce_type = value
            elif key.lower() in self._context_fields:
                carried = True
        if ce_type is not None and ce_type != CREATED:
            return  # delivery outcomes: nothing for the client
        try:
            doc = orjson.loads(msg.value())
            if doc["type"] != "notification.created":
                return
            data = doc["data"]
            user_id, note = data["user_id"], data["notification"]
            seq = int(note["seq"])
            if not isinstance(user_id, str) or not isinstance(note, dict):
                raise TypeError("user_id must be a string and notification an object")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("hub skipped a malformed notification.created at offset %s", msg.offset())
            return
        if not self._hub.has_user(user_id):
            return
        frame = orjson.dumps({"type": "notification", "notification": note}).decode()
        context = _traced(headers) if carried else None
        self._hub.publish(user_id, seq, Note(frame, context, note.get("id"), doc.get("id")))
        _, stamp = msg.timestamp()
        if stamp > 0:
            self._metrics.hub_latency.observe(max(0.0, time.time() - stamp / 1000))


def _traced(headers: Any) -> Context | None:
    """The context the worker's notification.created PRODUCER span wrote into the headers,
    or None when no frame span should be made: a `websocket send` span costs ~20 us per
    frame and connection, and under the (parent-based) sampler an unsampled or missing
    parent would only buy a non-recording span for ~13 us."""
    context = extract_context(headers)
    parent = trace.get_current_span(context).get_span_context()
    return context if parent.is_valid and parent.trace_flags.sampled else None
