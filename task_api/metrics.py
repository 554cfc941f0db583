"""Prometheus metrics of the task service (one registry per app, so tests never collide)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

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


@dataclass(frozen=True)
class McpMetrics:
    """MCP tool calls by tool and outcome (`ok`, `invalid_arguments`, `task_not_found`, ...)."""

    calls: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> McpMetrics:
        return cls(
            Counter(
                "taskflow_mcp_tool_calls",
                "MCP tool calls by tool and outcome",
                ["tool", "outcome"],
                registry=registry,
            ),
            Histogram(
                "taskflow_mcp_tool_call_duration_seconds",
                "MCP tool call duration by tool",
                ["tool"],
                registry=registry,
            ),
        )

    def observe(self, tool: str, outcome: str, seconds: float) -> None:
        self.calls.labels(tool, outcome).inc()
        self.duration.labels(tool).observe(seconds)
