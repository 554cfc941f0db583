"""Prometheus metrics with one naming scheme: `taskflow_` prefix, `_total`, `_seconds`.

Every helper takes the app's own `CollectorRegistry`; see docs/observability.md for the
table of names each service exposes.
"""

from observability.metrics.domain import (
    AuditMetrics,
    BreakerState,
    ChannelMetrics,
    OutboxMetrics,
    ReminderMetrics,
    WebSocketMetrics,
)
from observability.metrics.http import HttpMetrics
from observability.metrics.lag import OFFSET_INVALID, LagConsumer, consumer_lag
from observability.metrics.messaging import ConsumerLagMetrics, MessagingMetrics
from observability.metrics.registry import DELAY_BUCKETS, LATENCY_BUCKETS, family, new_registry
from observability.metrics.serve import MetricsServer, serve_metrics

__all__ = [
    "DELAY_BUCKETS",
    "LATENCY_BUCKETS",
    "OFFSET_INVALID",
    "AuditMetrics",
    "BreakerState",
    "ChannelMetrics",
    "ConsumerLagMetrics",
    "HttpMetrics",
    "LagConsumer",
    "MessagingMetrics",
    "MetricsServer",
    "OutboxMetrics",
    "ReminderMetrics",
    "WebSocketMetrics",
    "consumer_lag",
    "family",
    "new_registry",
    "serve_metrics",
]
