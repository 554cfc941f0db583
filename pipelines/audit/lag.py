"""Bytewax's per-partition consumer lag, re-exposed as `taskflow_consumer_lag_messages`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipelines.audit.decode import GROUP

LAG_NAME = "taskflow_consumer_lag_messages"


class ConsumerLagCollector(Collector):
    """Bytewax's per-partition lag, re-exposed as `taskflow_consumer_lag_messages`.

    Bytewax's Kafka source sets its own gauge `bytewax_kafka_consumer_lag` from librdkafka's
    statistics (once a second, no extra broker calls) and installs that callback itself,
    so the figure cannot be fed into `observability.metrics.ConsumerLagMetrics` (a push
    gauge); it is relabelled at scrape time instead. Same name, labels and meaning.
    """

    def __init__(self, source: Collector, group: str = GROUP) -> None:
        self._source, self._group = source, group

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            LAG_NAME,
            "Messages not yet consumed: high watermark minus committed (or processed) offset.",
            labels=("group", "topic", "partition"),
        )
        for metric in self._source.collect():
            for sample in metric.samples:
                labels = sample.labels
                lag.add_metric(
                    [self._group, labels.get("topic", ""), labels.get("partition", "")],
                    sample.value,
                )
        yield lag


def expose_consumer_lag(registry: CollectorRegistry) -> None:
    """Swap Bytewax's lag gauge in `registry` for `taskflow_consumer_lag_messages`."""
    from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE

    with contextlib.suppress(KeyError):  # already swapped (or never registered there)
        registry.unregister(BYTEWAX_CONSUMER_LAG_GAUGE)
    registry.register(ConsumerLagCollector(BYTEWAX_CONSUMER_LAG_GAUGE))
