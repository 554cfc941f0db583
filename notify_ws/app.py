"""The notification service's composition root: `create_app(config)` wires every adapter."""

from __future__ import annotations

import time
from collections.abc import Callable

from quart import Quart

from notify_ws.clock import Clock, SystemClock
from notify_ws.context import NotifyContext
from notify_ws.http.console import CONSOLE_CSP, console
from notify_ws.http.routes import api
from notify_ws.http.ws import ws
from notify_ws.hub.hub import Hub
from notify_ws.metrics import Metrics
from notify_ws.service import ChannelFactory, Service
from notify_ws.settings import Config
from runtime.web import WebService, service_app
from webapi.websocket import InlineWebsocketConnection

SERVICE_NAME = "taskflow-notification-service"


def create_app(
    config: Config | None = None,
    clock: Clock | None = None,
    channels: ChannelFactory | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Quart:
    """The Quart app (REST + /ws) with worker, dispatcher and hub started in before_serving."""
    config = config or Config()
    metrics = Metrics()
    ctx = NotifyContext(
        config=config,
        clock=clock or SystemClock(),
        metrics=metrics,
        hub=Hub(metrics),
        jwt_secret=config.auth.jwt_secret.get_secret_value(),
        tokens=config.auth.verifier(),
    )
    service = Service(ctx, channels, monotonic)
    app = service_app(_web_service(config, service), metrics.registry, ctx.tokens, config.security)
    # One task and no queue per socket instead of Quart's two tasks and a queue (the hub
    # holds ~19,000 sockets: docs/adr/0009-asgi-server.md).
    app.asgi_websocket_class = InlineWebsocketConnection
    app.extensions["notify_ws"] = ctx
    app.extensions["notify_ws.service"] = service
    app.register_blueprint(api)
    app.register_blueprint(ws)
    app.register_blueprint(console)

    @app.before_serving
    async def start() -> None:
        await service.start()

    @app.after_serving
    async def stop() -> None:
        await service.stop()

    return app


def service_of(app: Quart) -> Service:
    svc: Service = app.extensions["notify_ws.service"]
    return svc


def _web_service(config: Config, service: Service) -> WebService:
    """What the skeleton installs: ready once the consumers hold their partitions, then
    as long as the database answers and no background part has died."""
    return WebService(
        name=SERVICE_NAME,
        title="TaskFlow notification service",
        import_name=__name__,
        max_body_bytes=config.notify.max_body_bytes,
        ready_checks={"database": service.check_database, "background": service.check_tasks},
        startup_checks={"kafka": service.check_kafka, "partitions": service.check_partitions},
        page_csp={"/console": CONSOLE_CSP},
        # A socket lives for hours: a span over its life says nothing and costs memory per
        # connection. Notification frames are traced from Kafka instead.
        untraced_paths=("/ws",),
        heartbeats=service.heartbeats,  # liveness: worker, feed, dispatcher, sweep
    )
