"""HTTP server metrics, labelled by route template (never by raw path: bounded cardinality)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from observability.metrics.registry import LATENCY_BUCKETS, family


class HttpMetrics:
    """`taskflow_http_requests_total` and `taskflow_http_request_duration_seconds`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = family(
            registry,
            Counter,
            "taskflow_http_requests",
            "HTTP requests handled, by method, route template and status code.",
            ("method", "route", "status"),
        )
        self.duration = family(
            registry,
            Histogram,
            "taskflow_http_request_duration_seconds",
            "Time to handle an HTTP request, by method and route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)
