"""Server spans and HTTP metrics for a Quart app, both labelled by route template.

One OpenTelemetry ASGI middleware (no span per WebSocket frame: receive/send spans are
excluded) and one thin ASGI timer that also writes the access log; a `before_request`
hook names the span after the matched rule. Measured per request on this machine: the
OTel middleware ~100-130 us CPU with tracing on (a hand-rolled one saved only ~45 us, so
the standard one stays), the timer and hook ~30 us.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from prometheus_client import CollectorRegistry
from quart import Quart, request, websocket

from observability.metrics.http import HttpMetrics
from observability.tracing import provider_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Probes and scrapes would otherwise make a trace every few seconds.
DEFAULT_EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$"
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # no trace, no access log
_ROUTE_KEY = "taskflow.route"
UNMATCHED_ROUTE = "<unmatched>"


access_log = logging.getLogger("taskflow.access")


def _access_log_wanted() -> bool:
    return os.environ.get("TASKFLOW_ACCESS_LOG", "true").strip().lower() not in ("0", "false", "no")


class HttpMetricsMiddleware:
    """Times each HTTP request, records it under the route template Quart matched and
    writes one access-log line while the server span is still current (so the line
    carries the trace id; Hypercorn's own access log runs outside the span).

    The line's structured fields: `http_method`, `http_route` (the template, or
    `<unmatched>`), `http_status`, `duration_ms`, and, from the log filter, `trace_id` and
    `span_id`. Probes and scrapes (`_QUIET_PATHS`) are counted but not logged."""

    def __init__(self, app: AsgiApp, metrics: HttpMetrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            method, route = scope.get("method", "GET"), scope.get(_ROUTE_KEY, UNMATCHED_ROUTE)
            took = perf_counter() - start
            self.metrics.observe(method, route, status, took)
            path = scope.get("path", "")
            quiet = path in _QUIET_PATHS
            if self.log_requests and not quiet and access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d %.1fms",
                    method,
                    path,
                    status,
                    took * 1000,
                    extra={
                        "http_method": method,
                        "http_route": route,
                        "http_status": status,
                        "duration_ms": round(took * 1000, 3),
                    },
                )


def _name_span(method: str, rule: str | None) -> None:
    span = trace.get_current_span()
    if rule is not None and span.is_recording():
        span.update_name(f"{method} {rule}")
        span.set_attribute("http.route", rule)


def instrument_app(
    app: Quart,
    service_name: str,
    registry: CollectorRegistry,
    *,
    excluded_urls: str = DEFAULT_EXCLUDED_URLS,
    log_requests: bool | None = None,
) -> HttpMetrics:
    """Add server spans (OTel ASGI middleware), `taskflow_http_*` metrics and an access log
    (logger `taskflow.access`, INFO; TASKFLOW_ACCESS_LOG=false turns it off) to `app`."""
    metrics = HttpMetrics(registry)

    @app.before_request
    async def _route_of_request() -> None:
        rule = request.url_rule.rule if request.url_rule is not None else None
        if rule is not None:
            # Quart hands the ASGI scope dict through, so the timer outside sees this key.
            cast(dict[str, Any], request.scope)[_ROUTE_KEY] = rule
        _name_span(request.method, rule)

    @app.before_websocket
    async def _route_of_websocket() -> None:
        rule = websocket.url_rule.rule if websocket.url_rule is not None else None
        _name_span("WEBSOCKET", rule)

    wanted = _access_log_wanted() if log_requests is None else log_requests
    inner: AsgiApp = HttpMetricsMiddleware(cast(AsgiApp, app.asgi_app), metrics, wanted)
    traced = OpenTelemetryMiddleware(
        inner,
        excluded_urls=excluded_urls,
        tracer_provider=provider_for(service_name),
        # HTTP metrics come from prometheus-client above; skip the OTel meter work.
        meter_provider=NoOpMeterProvider(),
        exclude_spans=["receive", "send"],
    )
    app.asgi_app = traced  # type: ignore[method-assign,assignment]
    return metrics
