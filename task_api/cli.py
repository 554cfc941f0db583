"""Entry points of the task service: serve, relay, migrate, republish snapshots."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime

from tortoise import Tortoise
from tortoise.migrations.api import migrate as run_migrations
from tortoise.transactions import in_transaction

from events.producer import AsyncProducer
from observability.logs import setup_logging
from observability.tracing import setup_tracing
from runtime.migrations import advisory_lock_at
from runtime.servers import ServerName, ServerOptions
from runtime.service import ServiceSpec, run_service
from task_api.db.outbox import resend_published_since
from task_api.metrics import TaskMetrics
from task_api.relay import RELAY_PRODUCER, OutboxRelay
from task_api.services import EventSink, republish_open_tasks
from task_api.settings import Config, TaskApiSettings

# Measured side by side with the bare-echo bench (docs/adr/0009-asgi-server.md).
DEFAULT_SERVER: ServerName = "uvicorn"
# "task": held while Tortoise migrates, so two migrators (pods, `taskflow up`) take turns.
MIGRATION_LOCK_KEY = 0x7461736B


def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the API (and the in-process relay) until SIGINT/SIGTERM."""
    from task_api.app import SERVICE_NAME, create_app

    config = Config()
    settings = config.service
    if settings.workers > 1:
        _serve_workers(settings, host, port)
        return
    run_service(
        ServiceSpec(
            name=SERVICE_NAME,
            build_app=lambda: create_app(config),
            options=ServerOptions(
                host=host or settings.host, port=port or settings.port, graceful_timeout=10
            ),
            default_server=DEFAULT_SERVER,
        )
    )


def _serve_workers(settings: TaskApiSettings, host: str | None, port: int | None) -> None:
    """Several worker processes on one port (Hypercorn's process manager); each builds its
    own app and relay (relays share the outbox safely) through `worker_app`."""
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.run import run as hypercorn_run

    from task_api.app import SERVICE_NAME

    setup_logging(SERVICE_NAME)
    server = HypercornConfig()
    server.bind = [f"{host or settings.host}:{port or settings.port}"]
    server.accesslog = None
    server.graceful_timeout = 10
    server.application_path = "task_api.cli:worker_app()"
    server.workers = settings.workers
    server.worker_class = "uvloop"
    hypercorn_run(server)


def worker_app() -> object:
    """The app of one Hypercorn worker process (multi-worker mode)."""
    from task_api.app import SERVICE_NAME, create_app

    setup_logging(SERVICE_NAME)
    return create_app(Config())


def relay() -> None:
    """Run the outbox relay alone (several may run: they share work without duplicating)."""
    setup_logging("taskflow-task-relay")
    setup_tracing("taskflow-task-service")
    config = Config()
    from prometheus_client import CollectorRegistry

    async def main(stop: asyncio.Event) -> None:
        settings = config.service
        await Tortoise.init(config=settings.tortoise_config(), _enable_global_fallback=True)
        outbox_relay = OutboxRelay(
            lambda: AsyncProducer(config.kafka.producer(**RELAY_PRODUCER)),
            settings.database_url,
            TaskMetrics.create(CollectorRegistry()),
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval,
            max_backoff=settings.relay_max_backoff,
            delivery_timeout=settings.relay_delivery_timeout,
        )
        runner = asyncio.create_task(outbox_relay.run(warm_up_topic=config.kafka.topics.tasks))
        await stop.wait()
        outbox_relay.stop()
        await runner
        await Tortoise.close_connections()

    _run_until_signal(main)


async def migrate() -> None:
    """Apply the task database's migrations (idempotent)."""
    settings = TaskApiSettings()
    try:
        async with advisory_lock_at(settings.database_url, MIGRATION_LOCK_KEY):
            await run_migrations(config=settings.tortoise_config())
    finally:
        await Tortoise.close_connections()


async def republish_snapshots() -> int:
    """Rebuild an empty broker: re-send recent events, then a `task.snapshot` of every open
    task (after them, so it is the last word). Returns how many snapshots were enqueued.

    `taskflow up` calls this when it had to start an empty local broker. Events published
    within `BROKER_RESET_REPLAY` may not have been consumed before the old broker went away;
    consumers apply each event id once, so re-sending them is safe.
    """
    config = Config()
    await Tortoise.init(config=config.service.tortoise_config(), _enable_global_fallback=True)
    try:
        async with in_transaction() as conn:
            since = datetime.now(UTC) - config.service.broker_reset_replay
            await resend_published_since(conn, since)
            sink = EventSink(config.kafka.topics, config.service.source)
            return await republish_open_tasks(conn, sink)
    finally:
        await Tortoise.close_connections()


def _run_until_signal(main: object) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)  # type: ignore[operator]

    try:
        import uvloop

        uvloop.run(runner())
    except ImportError:
        asyncio.run(runner())
