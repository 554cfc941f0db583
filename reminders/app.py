"""The reminder service's composition root: the read API on port 8004."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from quart import Quart, request
from quart_schema import QuartSchema

from events.kafka import KafkaSettings
from reminders.db import store
from reminders.domain.clock import Clock, system_clock
from reminders.http.routes import api
from reminders.metrics import ReadModelCollector
from reminders.settings import ReminderSettings
from webapi.auth import AuthSettings, TokenVerifier
from webapi.hardening import WebSecuritySettings, install_hardening
from webapi.openapi import ProblemOpenAPIProvider
from webapi.probes import probes_blueprint
from webapi.problems import install_problem_handlers

MAX_BODY = 1024 * 1024


@dataclass
class ServiceContext:
    """What handlers reach through `current_app.extensions["reminders"]`."""

    settings: ReminderSettings
    tokens: TokenVerifier
    clock: Clock
    kafka: KafkaSettings
    collector: ReadModelCollector = field(default_factory=ReadModelCollector)
    pool: Any = None
    admin: AdminClient | None = None


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
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["reminders"] = ctx
    QuartSchema(
        app,
        info={"title": "TaskFlow reminder service", "version": "1"},
        openapi_provider_class=ProblemOpenAPIProvider,
    )
    install_problem_handlers(app)
    install_hardening(app, security or WebSecuritySettings(), ctx.tokens)

    registry = CollectorRegistry()
    registry.register(ctx.collector)

    async def database() -> None:
        async with ctx.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def kafka_check() -> None:
        assert ctx.admin is not None  # noqa: S101 - set in before_serving
        await asyncio.to_thread(ctx.admin.list_topics, None, 2.0)

    app.register_blueprint(probes_blueprint({"database": database, "kafka": kafka_check}, registry))
    app.register_blueprint(api)

    @app.before_serving
    async def _open() -> None:
        ctx.pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
        ctx.admin = AdminClient(ctx.kafka.admin())

    @app.after_serving
    async def _close() -> None:
        if ctx.pool is not None:
            await ctx.pool.close()

    @app.before_request
    async def _refresh_metrics() -> None:
        # Prometheus collectors cannot await: load the figures just before a scrape.
        if request.path == "/metrics":
            try:
                async with ctx.pool.acquire() as conn:
                    ctx.collector.values = await store.metric_values(conn)
            except (OSError, asyncpg.PostgresError):
                pass  # serve the last values; /readyz reports the database

    return app
