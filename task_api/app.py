"""The task service's composition root: `create_app(config)` builds every adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from quart import Quart
from tortoise import Tortoise, connections

from events.producer import AsyncProducer
from observability.db import instrument_asyncpg
from runtime.heartbeat import Heartbeats
from runtime.web import WebService, service_app
from task_api.context import Clock, TaskContext, utc_now
from task_api.http.routes import tasks
from task_api.http.users import users
from task_api.mcp import mount_mcp
from task_api.metrics import TaskMetrics
from task_api.relay import RELAY_PRODUCER, OutboxRelay
from task_api.services import EventSink
from task_api.settings import Config

log = logging.getLogger(__name__)
SERVICE_NAME = "taskflow-task-service"
RELAY_TASK = "outbox-relay"  # the relay's task and heartbeat name
RELAY_STOP_MARGIN = 10.0  # seconds beyond the delivery timeout a stopping relay gets

ProducerFactory = Callable[[], AsyncProducer]


def create_app(
    config: Config | None = None,
    clock: Clock = utc_now,
    producer_factory: ProducerFactory | None = None,
) -> Quart:
    """The Quart app with its database, relay, producer and probes wired from `config`."""
    config = config or Config()
    settings, kafka = config.service, config.kafka
    instrument_asyncpg()
    # The relay already batches (it awaits a whole claim at once): lingering only adds lag.
    make_producer = producer_factory or (lambda: AsyncProducer(kafka.producer(**RELAY_PRODUCER)))
    registry = CollectorRegistry()
    metrics = TaskMetrics.create(registry)
    tokens = config.auth.verifier()

    async def database_ready() -> None:
        await connections.get("default").execute_query("SELECT 1")

    heartbeats = Heartbeats()

    # Readiness is the database only: with Kafka down, writes go on into the outbox and
    # events wait (the outbox-backlog alert says so), so the API stays in service.
    app = service_app(
        WebService(
            name=SERVICE_NAME,
            title="TaskFlow task service",
            import_name=__name__,
            max_body_bytes=settings.max_body_bytes,
            ready_checks={"database": database_ready},
            cors_origins=settings.cors_origins,
            heartbeats=heartbeats,
        ),
        registry,
        tokens,
        config.security,
    )
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
        delivery_timeout=settings.relay_delivery_timeout,
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
    app.register_blueprint(tasks)
    app.register_blueprint(users)  # erasure and export (issue 16)
    # The second front door (issue 15): MCP at /mcp, same use cases, context and limits.
    mount_mcp(app, context, config, registry, service_name=SERVICE_NAME)

    @app.before_serving
    async def start() -> None:
        nonlocal relay_task
        await Tortoise.init(config=settings.tortoise_config(), _enable_global_fallback=True)
        if settings.run_relay:
            relay_task = heartbeats.spawn(
                RELAY_TASK, settings.relay_max_silence, relay.run(kafka.topics.tasks)
            )

    @app.after_serving
    async def stop() -> None:
        heartbeats.stop()
        relay.stop()
        if relay_task is not None:
            # The batch in flight finishes; a wedged or dead relay (liveness said so) must
            # not hold the shutdown up, nor fail it.
            grace = settings.relay_delivery_timeout.total_seconds() + RELAY_STOP_MARGIN
            done, _ = await asyncio.wait({relay_task}, timeout=grace)
            if not done:
                relay_task.cancel()
                await asyncio.wait({relay_task})
            if not relay_task.cancelled() and (exc := relay_task.exception()) is not None:
                log.error("the outbox relay had died", exc_info=exc)
        await Tortoise.close_connections()

    return app
