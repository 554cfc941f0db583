"""Kafka event metrics: produced, consumed, processing latency, DLQ, consumer lag."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from observability.metrics.registry import LATENCY_BUCKETS, family


class MessagingMetrics:
    """Per topic and CloudEvents type counters and the processing-time histogram."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.produced = family(
            registry,
            Counter,
            "taskflow_events_produced",
            "Events whose delivery the broker acknowledged, by topic and CloudEvents type.",
            ("topic", "type"),
        )
        self.consumed = family(
            registry,
            Counter,
            "taskflow_events_consumed",
            "Events read and handled (successfully or sent to the DLQ), by topic and type.",
            ("topic", "type"),
        )
        self.processing = family(
            registry,
            Histogram,
            "taskflow_event_processing_seconds",
            "Time from taking an event off a topic to its effect being durable.",
            ("topic", "type"),
            buckets=LATENCY_BUCKETS,
        )
        self.dead_lettered = family(
            registry,
            Counter,
            "taskflow_dlq_messages",
            "Messages sent to the dead-letter topic, by origin topic and reason.",
            ("topic", "reason"),
        )
        self.produce_errors = family(
            registry,
            Counter,
            "taskflow_produce_errors",
            "Publishes the broker refused or that timed out, by topic.",
            ("topic",),
        )

    def event_produced(self, topic: str, event_type: str) -> None:
        self.produced.labels(topic, event_type).inc()

    def event_consumed(self, topic: str, event_type: str, seconds: float | None = None) -> None:
        """Count one handled event; `seconds` is its processing time when measured."""
        self.consumed.labels(topic, event_type).inc()
        if seconds is not None:
            self.processing.labels(topic, event_type).observe(seconds)

    def dead_letter(self, topic: str, reason: str) -> None:
        """Count one message sent to the DLQ; `reason` is a short fixed word (e.g. decode)."""
        self.dead_lettered.labels(topic, reason).inc()

    def produce_failed(self, topic: str) -> None:
        self.produce_errors.labels(topic).inc()


class ConsumerLagMetrics:
    """`taskflow_consumer_lag_messages{group,topic,partition}`: see `lag.consumer_lag`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = family(
            registry,
            Gauge,
            "taskflow_consumer_lag_messages",
            "Messages not yet consumed: high watermark minus committed (or processed) offset.",
            ("group", "topic", "partition"),
        )

    def set(self, group: str, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(group, topic, str(partition)).set(lag)

    def update(self, group: str, lags: Mapping[tuple[str, int], int]) -> None:
        """Record every partition of one `consumer_lag(...)` result."""
        for (topic, partition), lag in lags.items():
            self.set(group, topic, partition, lag)
