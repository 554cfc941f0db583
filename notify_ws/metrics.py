"""The service's Prometheus metrics, on a registry of its own (several apps per test run).

The families are the shared ones from `observability.metrics` (names in
docs/observability.md), so dashboards and alerts read every service the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from notify_ws.channels.breaker import State
from observability.metrics import (
    BreakerState,
    ChannelMetrics,
    ConsumerLagMetrics,
    MessagingMetrics,
    WebSocketMetrics,
    family,
)

# Our breaker enum orders half-open and open the other way round from the shared gauge.
_BREAKER = {
    State.CLOSED: BreakerState.CLOSED,
    State.HALF_OPEN: BreakerState.HALF_OPEN,
    State.OPEN: BreakerState.OPEN,
}


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ws = WebSocketMetrics(r)
        self.channels = ChannelMetrics(r)
        self.lag = ConsumerLagMetrics(r)
        self.messaging = MessagingMetrics(r)
        self.connections = self.ws.connections
        self.frames_sent = self.ws.frames.labels("sent")
        self.frames_received = self.ws.frames.labels("received")
        self.slow_disconnects = self.ws.dropped.labels("slow_client")
        self.notifications = family(
            r, Counter, "taskflow_notifications_created",
            "Notifications persisted by the worker, by kind (task.created, task.reminder, ...).",
            ("kind",),
        )  # fmt: skip
        self.hub_latency = family(
            r, Histogram, "taskflow_websocket_forward_seconds",
            "From the notification.created broker timestamp to its frame being queued.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )  # fmt: skip

        self.fast_path = family(
            r, Counter, "taskflow_websocket_fast_path",
            "Notifications this process's worker handed straight to its own hub after commit.",
        )  # fmt: skip

    def breaker_state(self, key: str, state: State) -> None:
        """Per channel, not per breaker key: webhook keys name user-chosen hosts, which
        would make the label unbounded; the gauge shows the latest change of the channel."""
        self.channels.breaker_state(key.partition(":")[0], _BREAKER[state])
