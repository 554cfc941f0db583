"""The notification service's composition root: `create_app(config)` wires every adapter."""

from __future__ import annotations

import time
from collections.abc import Callable

from quart import Quart
from quart_schema import QuartSchema

from notify_ws.clock import Clock, SystemClock
from notify_ws.context import NotifyContext
from notify_ws.http.console import CONSOLE_CSP, console
from notify_ws.http.routes import api
from notify_ws.http.ws import ws
from notify_ws.hub.hub import Hub
from notify_ws.metrics import Metrics
from notify_ws.service import ChannelFactory, Service
from notify_ws.settings import Config
from webapi.hardening import install_hardening
from webapi.openapi import ProblemOpenAPIProvider
from webapi.probes import probes_blueprint
from webapi.problems import install_problem_handlers

SERVICE_NAME = "taskflow-notification-service"


def create_app(
    config: Config | None = None,
    clock: Clock | None = None,
    channels: ChannelFactory | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    instrument: bool = True,
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

    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.notify.max_body_bytes
    app.config["QUART_SCHEMA_CONVERSION_PREFERENCE"] = "pydantic"
    QuartSchema(
        app,
        info={"title": "TaskFlow notification service", "version": "1.0.0"},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"}},
        security=[{"bearer": []}],
        openapi_provider_class=ProblemOpenAPIProvider,
    )
    install_problem_handlers(app)
    install_hardening(app, config.security, ctx.tokens, page_csp={"/console": CONSOLE_CSP})
    app.extensions["notify_ws"] = ctx
    app.extensions["notify_ws.service"] = service
    app.register_blueprint(
        probes_blueprint(
            {
                "database": service.check_database,
                "kafka": service.check_kafka,
                "background": service.check_tasks,
            },
            metrics.registry,
        )
    )
    app.register_blueprint(api)
    app.register_blueprint(ws)
    app.register_blueprint(console)
    if instrument:
        from observability.quart import DEFAULT_EXCLUDED_URLS, instrument_app
        from observability.tracing import setup_tracing

        setup_tracing(SERVICE_NAME)
        # A socket lives for hours: a span over its life says nothing and costs memory
        # per connection. Notification frames are traced from Kafka instead.
        instrument_app(
            app, SERVICE_NAME, metrics.registry, excluded_urls=DEFAULT_EXCLUDED_URLS + ",/ws$"
        )

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
