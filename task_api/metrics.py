"""Prometheus metrics of the task service (one registry per app, so tests never collide)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from observability.metrics.domain import OutboxMetrics
from observability.metrics.messaging import MessagingMetrics


@dataclass(frozen=True)
class TaskMetrics:
    registry: CollectorRegistry
    outbox: OutboxMetrics
    messaging: MessagingMetrics

    @classmethod
    def create(cls, registry: CollectorRegistry) -> TaskMetrics:
        return cls(registry, OutboxMetrics(registry), MessagingMetrics(registry))
