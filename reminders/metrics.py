"""Prometheus view of the dataflow's work, read from the read model (survives restarts)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from reminders.db.store import LATENESS_BUCKETS, MetricValues

_COUNTERS = {
    "fired": "reminders sent on their own (task.reminder)",
    "held": "reminders held in a window and sent in a digest",
    "missed": "reminders missed while away, sent in a digest",
    "dropped": "reminders older than the catch-up max age, not sent",
    "digest": "reminder.digest events sent",
    "dlq": "task events sent to the dead-letter topic",
}


class ReadModelCollector(Collector):
    """Serves the last values `refresh` loaded (prometheus collectors cannot await)."""

    def __init__(self) -> None:
        self.values = MetricValues()

    def collect(self) -> Iterator[Metric]:
        values = self.values
        yield GaugeMetricFamily(
            "taskflow_reminders_pending",
            "reminders scheduled and not yet fired",
            value=values.pending,
        )
        for name, doc in _COUNTERS.items():
            yield CounterMetricFamily(
                f"taskflow_reminders_{name}", doc, value=values.counters.get(name, 0.0)
            )
        buckets = [(str(le), values.lateness_buckets.get(le, 0.0)) for le in LATENESS_BUCKETS]
        buckets.append(("+Inf", values.lateness_count))
        yield HistogramMetricFamily(
            "taskflow_reminders_lateness_seconds",
            "fired_at - remind_at of reminders sent on their own",
            buckets=buckets,
            sum_value=values.lateness_sum,
        )
