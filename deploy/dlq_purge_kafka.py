"""The purge's broker operations on a Kafka-protocol broker (Apache Kafka, Tansu) through
confluent-kafka's admin client, a consumer with `assign()` and the idempotent producer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)
from confluent_kafka.cimpl import NewTopic

from deploy.dlq import TOOL_GROUP, DeadLetter, DlqError, from_message, read_all
from deploy.dlq_purge import Layout, Outgoing
from events.kafka import KafkaSettings

# Topic settings the DLQ is made again with even where the broker does not say they were
# set on the topic (Tansu reports every value as a default).
KEPT_CONFIGS = ("retention.ms", "retention.bytes", "cleanup.policy", "min.insync.replicas")
_WAIT_S = 0.2


class KafkaPurgeBroker:
    """`deploy.dlq_purge.PurgeBroker` on Kafka; every wait is bounded by `deadline_s`."""

    def __init__(self, settings: KafkaSettings, deadline_s: float = 30.0) -> None:
        self._settings = settings
        self._deadline_s = deadline_s
        self._admin = AdminClient(settings.admin())
        self._producer: Producer | None = None

    def layout(self, topic: str) -> Layout | None:
        try:
            found = self._admin.describe_topics(TopicCollection([topic]))[topic].result(15)
        except KafkaException as exc:
            if _code(exc) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None
            raise DlqError(f"describing {topic}: {exc}") from None
        if found.topic_id is None:
            raise DlqError(f"the broker reports no topic id for {topic}: cannot purge safely")
        partitions = found.partitions
        replicas = len(partitions[0].replicas) if partitions else 1
        return Layout(str(found.topic_id), len(partitions), replicas, self._configs(topic))

    def read(self, topic: str) -> list[DeadLetter]:
        consumer = Consumer(self._settings.consumer(TOOL_GROUP, **{"enable.partition.eof": False}))
        try:
            return [from_message(m) for m in read_all(consumer, topic, self._deadline_s)]
        finally:
            consumer.close()

    def write(self, topic: str, records: Sequence[Outgoing]) -> None:
        if not records:
            return
        if self._producer is None:
            self._producer = Producer(self._settings.producer())
        producer = self._producer
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err.str())

        for record in records:
            kwargs: dict[str, Any] = {"timestamp": record.timestamp_ms or 0}
            while True:
                try:
                    producer.produce(
                        topic,
                        record.value,
                        record.key,
                        partition=record.partition,
                        headers=list(record.headers),
                        on_delivery=on_delivery,
                        **kwargs,
                    )
                    break
                except BufferError:
                    producer.poll(_WAIT_S)
        remaining = producer.flush(self._deadline_s)
        if remaining or errors:
            raise DlqError(f"writing to {topic}: {remaining} not acknowledged, {errors[:3]}")

    def create(self, topic: str, layout: Layout) -> Layout:
        deadline = time.monotonic() + self._deadline_s
        while True:
            new = NewTopic(topic, layout.partitions, layout.replicas, config=layout.configs)
            try:
                self._admin.create_topics([new])[topic].result(15)
            except KafkaException as exc:
                if _code(exc) != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise DlqError(f"creating {topic}: {exc}") from None
            now = self.layout(topic)
            if now is not None and now.topic_id != layout.topic_id:
                # Made by us, or meanwhile by a writer (auto-create) or an operator.
                return self._align(topic, now, layout.configs)
            # Not visible yet, or the old incarnation is still being deleted.
            _wait(deadline, f"creating {topic}")

    def delete(self, topic: str, topic_id: str) -> None:
        deadline = time.monotonic() + self._deadline_s
        now = self.layout(topic)
        if now is None or now.topic_id != topic_id:
            return
        try:
            self._admin.delete_topics([topic])[topic].result(15)
        except KafkaException as exc:
            if _code(exc) != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise DlqError(f"deleting {topic}: {exc}") from None
        while (now := self.layout(topic)) is not None and now.topic_id == topic_id:
            _wait(deadline, f"deleting {topic}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._deadline_s)

    def _configs(self, topic: str) -> dict[str, str]:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        try:
            entries = self._admin.describe_configs([resource])[resource].result(15)
        except KafkaException as exc:
            raise DlqError(f"reading the settings of {topic}: {exc}") from None
        return {
            name: entry.value
            for name, entry in entries.items()
            if entry.value is not None
            and (entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value or name in KEPT_CONFIGS)
        }

    def _align(self, topic: str, now: Layout, configs: dict[str, str]) -> Layout:
        wrong = {k: v for k, v in configs.items() if now.configs.get(k) != v}
        if not wrong:
            return now
        entries = [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in wrong.items()
        ]
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
        try:
            self._admin.incremental_alter_configs([resource])[resource].result(15)
        except KafkaException as exc:
            raise DlqError(f"setting {', '.join(wrong)} on {topic}: {exc}") from None
        return Layout(now.topic_id, now.partitions, now.replicas, now.configs | wrong)


def _code(exc: KafkaException) -> int | None:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def _wait(deadline: float, doing: str) -> None:
    if time.monotonic() > deadline:
        raise DlqError(f"{doing}: the broker did not finish in time")
    time.sleep(_WAIT_S)
