"""A Kafka sink for dataflows that returns from a batch only once every message is acked.

Bytewax's `KafkaSink` produces and flushes but never looks at delivery reports: a message
that times out (broker unreachable longer than `message.timeout.ms`) is dropped silently,
and the epoch is committed as if it had been written. The chaos suite lost every reminder
that fired during a 30 s broker freeze that way. Here failed or unreported messages are
produced again on a fresh client (an idempotent producer that timed out can stay wedged)
until all are acknowledged, so the flow waits out an outage instead of losing output.
Re-sends may repeat a message; consumers apply each event id once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

log = logging.getLogger(__name__)
SinkMessage = KafkaSinkMessage[bytes | None, bytes | None]


# Told (topic, message) once the broker acknowledged it: counts, in the flows' metrics.
OnDelivered = Callable[[str, SinkMessage], None]


class DeliveredKafkaSink(DynamicSink[SinkMessage]):
    """Every item names its topic; `config` is a full librdkafka producer configuration."""

    def __init__(
        self,
        config: dict[str, Any],
        max_backoff: float = 5.0,
        on_delivered: OnDelivered | None = None,
    ) -> None:
        self._config = config
        self._max_backoff = max_backoff
        self._on_delivered = on_delivered

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeliveredPartition:
        return _DeliveredPartition(self._config, self._max_backoff, self._on_delivered)


class _DeliveredPartition(StatelessSinkPartition[SinkMessage]):
    def __init__(
        self, config: dict[str, Any], max_backoff: float, on_delivered: OnDelivered | None
    ) -> None:
        self._config = config
        self._max_backoff = max_backoff
        self._on_delivered = on_delivered
        # Longer than message.timeout.ms: by then every message has a report, or the
        # client is wedged and is replaced.
        self._flush_timeout = int(config.get("message.timeout.ms", 300_000)) / 1000 + 5
        self._producer = Producer(config)

    def write_batch(self, items: list[SinkMessage]) -> None:
        pending = items
        delay = 0.1
        while pending:
            pending = self._send(pending)
            if pending:
                log.warning("%d messages not delivered; sending them again", len(pending))
                self._replace_producer()
                time.sleep(delay)  # backoff between attempts while the broker is away
                delay = min(self._max_backoff, delay * 2)

    def _send(self, items: list[SinkMessage]) -> list[SinkMessage]:
        """Produce `items` and wait for their reports; returns the ones not delivered."""
        delivered = [False] * len(items)

        def report(index: int) -> Any:
            def on_delivery(err: KafkaError | None, _msg: Message) -> None:
                delivered[index] = err is None

            return on_delivery

        for index, msg in enumerate(items):
            if msg.topic is None:
                raise ValueError(f"no topic to produce {msg!r} to")
            headers: list[tuple[str, str | bytes | None]] = list(msg.headers)
            while True:
                try:
                    self._producer.produce(
                        msg.topic, msg.value, msg.key, headers=headers,
                        timestamp=msg.timestamp, on_delivery=report(index),
                    )  # fmt: skip
                    break
                except BufferError:  # local queue full: let reports drain it
                    self._producer.poll(0.1)
            self._producer.poll(0)
        self._producer.flush(self._flush_timeout)
        if self._on_delivered is not None:
            for msg, ok in zip(items, delivered, strict=True):
                if ok and msg.topic is not None:
                    self._on_delivered(msg.topic, msg)
        return [msg for msg, ok in zip(items, delivered, strict=True) if not ok]

    def _replace_producer(self) -> None:
        self._producer.purge()
        self._producer.flush(0)
        self._producer = Producer(self._config)

    def close(self) -> None:
        self._producer.flush(self._flush_timeout)
