"""The task service's composition root: `create_app(config)` builds every adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from quart import Quart
from quart_schema import QuartSchema
from tortoise import Tortoise, connections

from events.producer import AsyncProducer
from observability.db import instrument_asyncpg
from observability.quart import instrument_app
from observability.tracing import setup_tracing
from task_api.context import Clock, TaskContext, utc_now
from task_api.http.routes import tasks
from task_api.metrics import TaskMetrics
from task_api.relay import RELAY_PRODUCER, OutboxRelay
from task_api.services import EventSink
from task_api.settings import Config
from webapi.hardening import install_hardening
from webapi.openapi import ProblemOpenAPIProvider
from webapi.probes import probes_blueprint
from webapi.problems import install_problem_handlers

log = logging.getLogger(__name__)
SERVICE_NAME = "taskflow-task-service"

ProducerFactory = Callable[[], AsyncProducer]


def create_app(
    config: Config | None = None,
    clock: Clock = utc_now,
    producer_factory: ProducerFactory | None = None,
) -> Quart:
    """The Quart app with its database, relay, producer and probes wired from `config`."""
    config = config or Config()
    settings, kafka = config.service, config.kafka
    setup_tracing(SERVICE_NAME)
    instrument_asyncpg()
    # The relay already batches (it awaits a whole claim at once): lingering only adds lag.
    make_producer = producer_factory or (lambda: AsyncProducer(kafka.producer(**RELAY_PRODUCER)))

    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["QUART_SCHEMA_CONVERSION_PREFERENCE"] = "pydantic"
    QuartSchema(
        app,
        info={"title": "TaskFlow task service", "version": "1.0.0"},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"}},
        security=[{"bearer": []}],
        openapi_provider_class=ProblemOpenAPIProvider,
    )
    install_problem_handlers(app)
    tokens = config.auth.verifier()
    install_hardening(app, config.security, tokens, cors_origins=settings.cors_origins)
    registry = CollectorRegistry()
    metrics = TaskMetrics.create(registry)
    relay = OutboxRelay(
        make_producer,
        settings.database_url,
        metrics,
        batch_size=settings.relay_batch_size,
        poll_interval=settings.relay_poll_interval,
        max_backoff=settings.relay_max_backoff,
        retention=settings.outbox_retention,
        idempotency_ttl=settings.idempotency_ttl,
        prune_interval=settings.prune_interval,
    )
    context = TaskContext(
        sink=EventSink(kafka.topics, settings.source),
        tokens=tokens,
        idempotency_ttl=settings.idempotency_ttl,
        clock=clock,
        on_commit=relay.wake if settings.run_relay else (lambda: None),
        notify_relays=not settings.run_relay,
    )
    app.extensions["task_api"] = context
    relay_task: asyncio.Task[None] | None = None

    async def database_ready() -> None:
        await connections.get("default").execute_query("SELECT 1")

    # Made on the first probe and dropped at shutdown (an AdminClient has no close; a live
    # one keeps reconnecting, and logging, after its broker is gone).
    admin: list[AdminClient] = []

    async def broker_ready() -> None:
        if not admin:
            admin.append(AdminClient(kafka.admin()))
        await asyncio.to_thread(admin[0].list_topics, None, 2.0)

    app.register_blueprint(
        probes_blueprint({"database": database_ready, "kafka": broker_ready}, registry)
    )
    app.register_blueprint(tasks)
    instrument_app(app, SERVICE_NAME, registry)

    @app.before_serving
    async def start() -> None:
        nonlocal relay_task
        await Tortoise.init(config=settings.tortoise_config(), _enable_global_fallback=True)
        if settings.run_relay:
            relay_task = asyncio.create_task(
                relay.run(warm_up_topic=kafka.topics.tasks), name="outbox-relay"
            )

    @app.after_serving
    async def stop() -> None:
        relay.stop()
        if relay_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
        admin.clear()
        await Tortoise.close_connections()

    return app
