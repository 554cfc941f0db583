"""Metric families of the services' own work, named once here so every service agrees.

Outbox (task service), reminders (reminder flow), WebSocket hub and channels
(notification service), audit chain verification (audit service).
"""

from __future__ import annotations

from enum import IntEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from observability.metrics.registry import DELAY_BUCKETS, LATENCY_BUCKETS, family


class OutboxMetrics:
    """Rows waiting in the transactional outbox and how long publishing took.

    The names match what the task service registered first (task_api/metrics.py).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog = family(
            registry,
            Gauge,
            "taskflow_outbox_backlog",
            "Outbox events committed but not yet delivered to Kafka.",
        )
        self.published_events = family(
            registry,
            Counter,
            "taskflow_outbox_published",
            "Outbox events delivered to Kafka, by event type.",
            ("type",),
        )
        self.publish_failures = family(
            registry,
            Counter,
            "taskflow_outbox_publish_failures",
            "Outbox events whose delivery failed (they are retried).",
        )
        self.publish_lag = family(
            registry,
            Histogram,
            "taskflow_outbox_publish_lag_seconds",
            "Time from writing an outbox row to its Kafka delivery report.",
            buckets=DELAY_BUCKETS,
        )

    def published(self, event_type: str, lag_seconds: float) -> None:
        self.published_events.labels(event_type).inc()
        self.publish_lag.observe(max(lag_seconds, 0.0))


class ReminderMetrics:
    """Timer lateness, pending timers and what fired (names as the reminder service
    already serves them from its read model, so a flow-side copy reads the same)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lateness = family(
            registry,
            Histogram,
            "taskflow_reminders_lateness_seconds",
            "fired_at - remind_at of reminders sent on their own.",
            buckets=DELAY_BUCKETS,
        )
        self.pending = family(
            registry,
            Gauge,
            "taskflow_reminders_pending",
            "Reminders scheduled and not yet fired.",
        )
        self.fired = family(
            registry, Counter, "taskflow_reminders_fired", "Reminders sent on their own."
        )
        self.digests = family(
            registry, Counter, "taskflow_reminders_digest", "reminder.digest events sent."
        )

    def fire(self, lateness_seconds: float) -> None:
        self.fired.inc()
        self.lateness.observe(max(lateness_seconds, 0.0))


class WebSocketMetrics:
    """Open connections, frames and slow clients dropped by the hub."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = family(
            registry,
            Gauge,
            "taskflow_websocket_connections",
            "WebSocket connections currently open.",
        )
        self.frames = family(
            registry,
            Counter,
            "taskflow_websocket_frames",
            "WebSocket frames, by direction (sent, received).",
            ("direction",),
        )
        self.dropped = family(
            registry,
            Counter,
            "taskflow_websocket_dropped_connections",
            "Connections the hub closed itself, by reason (slow_client, auth, ...).",
            ("reason",),
        )


class BreakerState(IntEnum):
    """Values of `taskflow_channel_breaker_state`."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class ChannelMetrics:
    """Notification deliveries per channel (in_app, email, push, webhook)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = family(
            registry,
            Counter,
            "taskflow_channel_deliveries",
            "Delivery attempts by channel and outcome (delivered, failed, retried, skipped).",
            ("channel", "outcome"),
        )
        self.duration = family(
            registry,
            Histogram,
            "taskflow_channel_delivery_seconds",
            "Time of one delivery attempt, by channel.",
            ("channel",),
            buckets=LATENCY_BUCKETS,
        )
        self.breaker = family(
            registry,
            Gauge,
            "taskflow_channel_breaker_state",
            "Circuit breaker per channel: 0 closed, 1 half-open, 2 open.",
            ("channel",),
        )

    def attempt(self, channel: str, outcome: str, seconds: float | None = None) -> None:
        self.deliveries.labels(channel, outcome).inc()
        if seconds is not None:
            self.duration.labels(channel).observe(seconds)

    def breaker_state(self, channel: str, state: BreakerState) -> None:
        self.breaker.labels(channel).set(int(state))


class AuditMetrics:
    """Result of the latest hash-chain verification (names as the audit service serves)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.verify_ok = family(
            registry,
            Gauge,
            "taskflow_audit_verify_ok",
            "1 if the latest hash-chain verification passed, 0 if it found a break.",
        )
        self.verify_last = family(
            registry,
            Gauge,
            "taskflow_audit_verify_timestamp_seconds",
            "Unix time of the latest hash-chain verification.",
        )

    def verified(self, ok: bool, at_unix: float) -> None:
        self.verify_ok.set(1 if ok else 0)
        self.verify_last.set(at_unix)
