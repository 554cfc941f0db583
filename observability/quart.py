"""Server spans and HTTP metrics for a Quart app, both labelled by route template.

One ASGI layer (`ServerMiddleware`) starts the server span, times the request and writes
the access log; a `before_request` hook names the span after the matched rule. It replaced
OpenTelemetry's ASGI middleware, which computed every request attribute, wrapped each ASGI
message and started a span per frame before the sampler had spoken: ~7 % of the task
service's samples at the shipped 1-in-10 sampling (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import Token
from time import perf_counter
from typing import Any, cast

from opentelemetry import propagate, trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.util.http import parse_excluded_urls
from prometheus_client import CollectorRegistry
from quart import Quart, request, websocket

from observability.messaging import AttributeValue
from observability.metrics.http import HttpMetrics
from observability.sampling import follows_parent
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
_TRACER_NAME = "taskflow.http"


access_log = logging.getLogger("taskflow.access")


def _access_log_wanted() -> bool:
    return os.environ.get("TASKFLOW_ACCESS_LOG", "true").strip().lower() not in ("0", "false", "no")


class _HeaderGetter(Getter[list[tuple[bytes, bytes]]]):
    """Read ASGI request headers (lower-case byte names, per the ASGI spec)."""

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.encode("latin-1")
        found = [v.decode("latin-1") for k, v in carrier if k == name]
        return found or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_getter = _HeaderGetter()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return cast(bytes, value).decode("latin-1")
    return None


def _request_attributes(scope: Scope, method: str) -> dict[str, AttributeValue]:
    """The stable HTTP semantic-convention attributes of a server span."""
    attrs: dict[str, AttributeValue] = {
        "http.request.method": method,
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope.get("root_path", "") + scope.get("path", ""),
    }
    query = scope.get("query_string")
    if query:
        attrs["url.query"] = query.decode("latin-1")
    if version := scope.get("http_version"):
        attrs["network.protocol.version"] = version
    if server := scope.get("server"):
        attrs["server.address"], attrs["server.port"] = server[0], server[1]
    if host := _header(scope, b"host"):
        address, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if address and port.isdigit():
            attrs["server.address"], attrs["server.port"] = address, int(port)
        else:
            attrs["server.address"] = host
    if client := scope.get("client"):
        attrs["client.address"], attrs["client.port"] = client[0], client[1]
    if agent := _header(scope, b"user-agent"):
        attrs["user_agent.original"] = agent
    return attrs


class ServerMiddleware:
    """One ASGI layer per request: the SERVER span, the `taskflow_http_*` metrics by route
    template and one access-log line written while the span is current (so the line
    carries the trace id; the server's own access log runs outside the span).

    The span is started from the W3C context of the request headers with no attributes:
    the shipped sampler (parent-based ratio, `observability.sampling`) decides on the trace
    id and parent alone, and 9 requests in 10 are not sampled. Only a recording span gets
    the stable-semconv attributes (`http.request.method`, `url.*`, `server.*`, `client.*`,
    `user_agent.original`, `http.response.status_code`, `error.type` on a 5xx or an
    exception). A sampler named by OTEL_TRACES_SAMPLER is given the request attributes at
    the start, in case it reads them. WebSocket: one span per connection, none per frame.

    The access line's structured fields: `http_method`, `http_route` (the template, or
    `<unmatched>`), `http_status`, `duration_ms`, and, from the log filter, `trace_id` and
    `span_id`. Probes and scrapes (`_QUIET_PATHS`) are counted but not logged, and the
    URLs matching `excluded_urls` get no span.
    """

    def __init__(
        self,
        app: AsgiApp,
        metrics: HttpMetrics,
        tracer: trace.Tracer,
        *,
        excluded_urls: str,
        log_requests: bool = True,
        attributes_at_start: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracer = tracer
        self.excluded = parse_excluded_urls(excluded_urls) if excluded_urls else None
        self.log_requests = log_requests
        self.attributes_at_start = attributes_at_start
        # The headers the configured propagators read (OTEL_PROPAGATORS, read at import).
        self._context_fields = {
            f.lower().encode("latin-1") for f in propagate.get_global_textmap().fields
        }

    def _traced(self, scope: Scope) -> bool:
        if self.excluded is None:
            return True
        scheme, server = scope.get("scheme", "http"), scope.get("server") or ("0.0.0.0", 80)  # noqa: S104
        url = (
            f"{scheme}://{server[0]}:{server[1]}{scope.get('root_path', '')}{scope.get('path', '')}"
        )
        return not self.excluded.url_disabled(url)

    def _start_span(self, scope: Scope, method: str) -> Span:
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        # Most requests carry no trace context: skip the propagators' lookups for them.
        carried = any(key in self._context_fields for key, _ in headers)
        parent = propagate.extract(headers, getter=_getter) if carried else None
        name = f"{method} {scope.get('path', '')}"
        if not self.attributes_at_start:
            span = self.tracer.start_span(name, parent, SpanKind.SERVER)
            if span.is_recording():
                span.set_attributes(_request_attributes(scope, method))
            return span
        attrs = _request_attributes(scope, method)
        return self.tracer.start_span(name, parent, SpanKind.SERVER, attrs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        method = scope.get("method", "GET")
        span = self._start_span(scope, method) if self._traced(scope) else None
        token = attach(set_span_in_context(span)) if span is not None else None
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        failure: BaseException | None = None
        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._observe(scope, method, status, perf_counter() - start)
            if span is not None and token is not None:
                _finish(span, token, status, failure)

    def _observe(self, scope: Scope, method: str, status: int, took: float) -> None:
        """The request's metrics and its access-log line (the span is still current)."""
        route = scope.get(_ROUTE_KEY, UNMATCHED_ROUTE)
        self.metrics.observe(method, route, status, took)
        path = scope.get("path", "")
        if self.log_requests and path not in _QUIET_PATHS and access_log.isEnabledFor(logging.INFO):
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

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._traced(scope):
            await self.app(scope, receive, send)
            return
        span = self._start_span(scope, "WEBSOCKET")
        token = attach(set_span_in_context(span))
        failure: BaseException | None = None
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _finish(span, token, None, failure)


def _finish(
    span: Span, token: Token[Context], status: int | None, failure: BaseException | None
) -> None:
    """End a server span (its closing attributes only if it records) and leave its context."""
    if span.is_recording() and (status is not None or failure is not None):
        _end_attributes(span, status, failure)
    span.end()
    detach(token)


def _end_attributes(span: Span, status: int | None, failure: BaseException | None) -> None:
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if failure is not None and not isinstance(failure, asyncio.CancelledError):
        span.record_exception(failure)
        span.set_attribute("error.type", type(failure).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}"))
    elif status is not None and status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))


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
    """Add server spans, `taskflow_http_*` metrics and an access log
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

    provider = provider_for(service_name)
    middleware = ServerMiddleware(
        cast(AsgiApp, app.asgi_app),
        metrics,
        provider.get_tracer(_TRACER_NAME),
        excluded_urls=excluded_urls,
        log_requests=_access_log_wanted() if log_requests is None else log_requests,
        attributes_at_start=not follows_parent(provider.sampler),
    )
    app.asgi_app = middleware  # type: ignore[method-assign,assignment]
    return metrics
