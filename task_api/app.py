"""The task service's composition root: `create_app(config)` builds every adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from quart import Quart, Response
from tortoise import Tortoise, connections

from events.producer import AsyncProducer
from observability.db import instrument_asyncpg
from runtime.heartbeat import Heartbeats
from runtime.web import WebService, service_app
from task_api.context import Clock, TaskContext, utc_now
from task_api.db.written import Written
from task_api.http.routes import tasks
from task_api.http.users import users
from task_api.mcp import mount_mcp
from task_api.metrics import TaskMetrics
from task_api.relay import RELAY_PRODUCER, OutboxRelay
from task_api.services import EventSink
from task_api.settings import Config, TaskApiSettings
from webapi.http_connection import InlineHttpConnection

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
    registry = CollectorRegistry()
    tokens = config.auth.verifier()
    heartbeats = Heartbeats()
    app = service_app(_web_service(config, heartbeats), registry, tokens, config.security)
    relay = _relay(config, TaskMetrics.create(registry), producer_factory)
    context = TaskContext(
        sink=EventSink(kafka.topics, settings.source),
        tokens=tokens,
        idempotency_ttl=settings.idempotency_ttl,
        clock=clock,
        on_commit=_on_commit(relay, settings),
        notify_relays=not settings.run_relay,
    )
    app.extensions["task_api"] = context
    # Small JSON requests: one task each instead of Quart's three (webapi.http_connection).
    app.asgi_http_class = InlineHttpConnection
    _responses_as_returned(app)
    app.register_blueprint(tasks)
    app.register_blueprint(users)  # erasure and export (issue 16)
    # The second front door (issue 15): MCP at /mcp, same use cases, context and limits.
    mount_mcp(app, context, config, registry, service_name=SERVICE_NAME)
    _run_relay_while_serving(app, config, relay, heartbeats)
    return app


def _responses_as_returned(app: Quart) -> None:
    """A route's ready `Response` goes straight out: quart-schema's `make_response` wrapper
    (for routes returning models) inspected every one (~2 % of a create's CPU), and Quart's
    own returns a `Response` unchanged. Anything else still goes through both."""
    convert = app.make_response

    async def make_response(result: Any) -> Any:
        if isinstance(result, Response):
            return result
        return await convert(result)

    app.make_response = make_response  # type: ignore[method-assign]


def _web_service(config: Config, heartbeats: Heartbeats) -> WebService:
    """What the skeleton installs: readiness is the database only. With Kafka down, writes go
    on into the outbox and events wait (the outbox-backlog alert says so)."""

    async def database_ready() -> None:
        await connections.get("default").execute_query("SELECT 1")

    return WebService(
        name=SERVICE_NAME,
        title="TaskFlow task service",
        import_name=__name__,
        max_body_bytes=config.service.max_body_bytes,
        ready_checks={"database": database_ready},
        cors_origins=config.service.cors_origins,
        heartbeats=heartbeats,
    )


def _on_commit(relay: OutboxRelay, settings: TaskApiSettings) -> Callable[[Written], None]:
    if not settings.run_relay:
        return lambda _written: None  # writers NOTIFY the relays elsewhere
    if settings.relay_hand_off:
        return relay.hand_off
    return lambda _written: relay.wake()


def _relay(
    config: Config, metrics: TaskMetrics, producer_factory: ProducerFactory | None
) -> OutboxRelay:
    settings, kafka = config.service, config.kafka
    # The relay already batches (it awaits a whole claim at once): lingering only adds lag.
    make_producer = producer_factory or (lambda: AsyncProducer(kafka.producer(**RELAY_PRODUCER)))
    return OutboxRelay(
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


def _run_relay_while_serving(
    app: Quart, config: Config, relay: OutboxRelay, heartbeats: Heartbeats
) -> None:
    """Tortoise and the in-process relay live from `before_serving` to `after_serving`."""
    settings = config.service
    running: list[asyncio.Task[None]] = []

    @app.before_serving
    async def start() -> None:
        await Tortoise.init(config=settings.tortoise_config(), _enable_global_fallback=True)
        if settings.run_relay:
            running.append(
                heartbeats.spawn(
                    RELAY_TASK, settings.relay_max_silence, relay.run(config.kafka.topics.tasks)
                )
            )

    @app.after_serving
    async def stop() -> None:
        heartbeats.stop()
        relay.stop()
        for task in running:
            grace = settings.relay_delivery_timeout.total_seconds() + RELAY_STOP_MARGIN
            await _stop_relay(task, grace)
        await Tortoise.close_connections()


async def _stop_relay(task: asyncio.Task[None], grace: float) -> None:
    """The batch in flight finishes; a wedged or dead relay (liveness said so) must not hold
    the shutdown up, nor fail it."""
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the outbox relay had died", exc_info=exc)
