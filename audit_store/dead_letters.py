"""Dead letters to `taskflow.dlq` through confluent-kafka, origin in the headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from audit_store.records import Poison
from events.dlq import DLQ_HEADERS, dlq_headers
from events.errors import PublishError

CONSUMER = "pipelines.audit"


class KafkaDeadLetters:
    """Blocking publisher: `send` returns only when every message is acknowledged."""

    def __init__(self, producer_config: dict[str, Any], topic: str, timeout: float = 15.0):
        self._producer = Producer(producer_config)
        self._topic = topic
        self._timeout = timeout

    def send(self, poison: Sequence[Poison]) -> None:
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err.str())

        for item in poison:
            origin = item.origin
            headers: list[tuple[str, str | bytes | None]] = [
                (k, v) for k, v in item.headers if k not in DLQ_HEADERS
            ]
            headers += dlq_headers(
                origin.topic, origin.partition, origin.offset, CONSUMER, item.error
            )
            self._producer.produce(
                self._topic, item.value, key=item.key, headers=headers, on_delivery=on_delivery
            )
        remaining = self._producer.flush(self._timeout)
        if remaining or errors:
            raise PublishError(f"dead letters not delivered: {remaining} pending, {errors[:3]}")

    def close(self) -> None:
        self._producer.flush(self._timeout)
