"""A /metrics endpoint on a port of its own, for processes without a web app (dataflows),
with the process's liveness at /healthz on the same port."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import (
    ThreadingWSGIServer,
    _get_best_family,
    _SilentHandler,
)

# Name → why, for each stuck part of the process (runtime.heartbeat.Heartbeats.stale).
Stale = Callable[[], Mapping[str, str]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def health_app(metrics: WsgiApp, stale: Stale | None) -> WsgiApp:
    """`/healthz`: 200, or 503 problem+json naming each stale part; anything else: metrics."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            return metrics(environ, start_response)
        failing = dict(stale()) if stale is not None else {}
        if not failing:
            body = json.dumps({"status": "ok"}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        problem = {
            "type": "https://taskflow.dev/problems/not-live",
            "title": "Not live",
            "status": 503,
            "detail": "; ".join(f"{name} {why}" for name, why in failing.items()),
            "errors": [{"field": name, "message": why} for name, why in failing.items()],
        }
        start_response("503 Service Unavailable", [("Content-Type", "application/problem+json")])
        return [json.dumps(problem).encode()]

    return app


class MetricsServer:
    """Prometheus exposition (and /healthz) on `host:port` in a daemon thread."""

    def __init__(
        self, registry: CollectorRegistry, host: str, port: int, stale: Stale | None = None
    ) -> None:
        class Server(ThreadingWSGIServer):
            """Per instance, as prometheus_client does: IPv4 or IPv6 by `host`."""

        Server.address_family, host = _get_best_family(host, port)  # type: ignore[no-untyped-call]
        app = health_app(make_wsgi_app(registry), stale)
        self._server: WSGIServer = make_server(
            host, port, app, Server, handler_class=_SilentHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, stale: Stale | None = None
) -> MetricsServer:
    """Start serving `registry` (and `stale` at /healthz) on `host:port` (0: a free port)."""
    return MetricsServer(registry, host, port, stale)
