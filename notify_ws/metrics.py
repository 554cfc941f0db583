"""The service's Prometheus metrics, on a registry of its own (several apps per test run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.connections = Gauge("notify_ws_connections", "Open WebSocket connections", registry=r)
        self.frames_sent = Counter(
            "notify_ws_frames_sent", "WebSocket frames sent", ["type"], registry=r
        )
        self.slow_disconnects = Counter(
            "notify_ws_slow_client_disconnects", "Clients closed with 1013", registry=r
        )
        self.deliveries = Counter(
            "notify_deliveries", "Channel deliveries by outcome", ["channel", "outcome"], registry=r
        )
        self.breaker_state = Gauge(
            "notify_breaker_state", "0 closed, 1 open, 2 half-open", ["breaker"], registry=r
        )
        self.consumer_lag = Gauge(
            "notify_consumer_lag",
            "High watermark minus committed offset (exact on Kafka; approximate on Tansu)",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.events = Counter(
            "notify_worker_events", "Events handled by the worker", ["outcome"], registry=r
        )
        self.notifications = Counter(
            "notify_notifications_created", "Notifications persisted", ["kind"], registry=r
        )
        self.dead_letters = Counter(
            "notify_dead_letters", "Messages sent to the DLQ", ["topic"], registry=r
        )
        self.hub_latency = Histogram(
            "notify_hub_forward_seconds",
            "notification.created timestamp to frame queued",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
