"""The reminder service's composition root: the read API on port 8004."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry
from quart import Quart, request

from events.kafka import KafkaSettings
from reminders.db import store
from reminders.domain.clock import Clock, system_clock
from reminders.http.routes import api
from reminders.metrics import ReadModelCollector
from reminders.settings import ReminderSettings
from runtime.database import create_pool
from runtime.web import WebService, service_app
from webapi.auth import AuthSettings, TokenVerifier
from webapi.hardening import WebSecuritySettings

MAX_BODY = 1024 * 1024
SERVICE_NAME = "taskflow-reminder-service"


@dataclass
class ServiceContext:
    """What handlers reach through `current_app.extensions["reminders"]`."""

    settings: ReminderSettings
    tokens: TokenVerifier
    clock: Clock
    kafka: KafkaSettings
    collector: ReadModelCollector = field(default_factory=ReadModelCollector)
    pool: Any = None


def create_app(
    settings: ReminderSettings | None = None,
    *,
    auth: AuthSettings | None = None,
    kafka: KafkaSettings | None = None,
    clock: Clock = system_clock,
    security: WebSecuritySettings | None = None,
) -> Quart:
    """Build the app; connections open in `before_serving`, never at import."""
    settings = settings or ReminderSettings()
    auth = auth or AuthSettings()
    ctx = ServiceContext(
        settings=settings,
        tokens=auth.verifier(),
        clock=clock,
        kafka=kafka or KafkaSettings(),
    )
    registry = CollectorRegistry()
    registry.register(ctx.collector)

    async def database() -> None:
        async with ctx.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    # Readiness is the database only: this API reads the schedule the dataflow writes.
    app = service_app(
        WebService(
            name=SERVICE_NAME,
            title="TaskFlow reminder service",
            import_name=__name__,
            max_body_bytes=MAX_BODY,
            ready_checks={"database": database},
        ),
        registry,
        ctx.tokens,
        security or WebSecuritySettings(),
    )
    app.extensions["reminders"] = ctx
    app.register_blueprint(api)
    _pool_while_serving(app, ctx)
    return app


def _pool_while_serving(app: Quart, ctx: ServiceContext) -> None:
    """The pool opens in `before_serving` and closes in `after_serving`; the read-model gauges
    are loaded just before a scrape (Prometheus collectors cannot await)."""
    settings = ctx.settings

    @app.before_serving
    async def _open() -> None:
        ctx.pool = await create_pool(settings.database_url)

    @app.after_serving
    async def _close() -> None:
        if ctx.pool is not None:
            await ctx.pool.close()

    @app.before_request
    async def _refresh_metrics() -> None:
        if request.path == "/metrics":
            try:
                async with ctx.pool.acquire() as conn:
                    ctx.collector.values = await store.metric_values(conn)
            except (OSError, asyncpg.PostgresError):
                pass  # serve the last values; /readyz reports the database
