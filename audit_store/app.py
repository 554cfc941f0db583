"""The audit service's Quart app: the one composition root of the process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from quart import Quart, request

from audit_store.db.pool import create_pool
from audit_store.digests import Signer
from audit_store.http.routes import audit
from audit_store.http.users import users
from audit_store.metrics import AuditMetrics, WatermarkReader
from audit_store.ports import Clock, utc_now
from audit_store.services import AuditServices
from audit_store.settings import AuditSettings
from events.kafka import KafkaSettings
from runtime.heartbeat import Heartbeats
from runtime.web import WebService, service_app
from webapi.auth import AuthSettings
from webapi.hardening import WebSecuritySettings

MAX_BODY = 1024 * 1024
JOB_SHUTDOWN_SECONDS = 5.0  # Quart's own grace for background tasks
SERVICE_NAME = "taskflow-audit-service"


def create_app(
    settings: AuditSettings | None = None,
    auth: AuthSettings | None = None,
    kafka: KafkaSettings | None = None,
    clock: Clock = utc_now,
    background: bool = True,
    security: WebSecuritySettings | None = None,
) -> Quart:
    """Build the app; clients connect in `before_serving`, never at import or here."""
    settings = settings or AuditSettings()
    tokens = (auth or AuthSettings()).verifier()
    registry = CollectorRegistry()
    metrics = AuditMetrics(registry)
    state: dict[str, AuditServices] = {}
    heartbeats = Heartbeats()

    async def check_database() -> None:
        await state["services"].pool.fetchval("SELECT 1")

    # Readiness is the database only: the audit API reads its store; the dataflow, not this
    # service, consumes Kafka (consumer lag is a metric and an alert).
    app = service_app(
        WebService(
            name=SERVICE_NAME,
            title="TaskFlow audit service",
            import_name="audit_store",
            max_body_bytes=MAX_BODY,
            ready_checks={"database": check_database},
            heartbeats=heartbeats,
        ),
        registry,
        tokens,
        security or WebSecuritySettings(),
    )
    app.register_blueprint(audit)
    app.register_blueprint(users)

    async def open_services() -> AuditServices:
        return AuditServices(
            settings=settings,
            pool=await create_pool(settings.database_url, settings.pool_size),
            signer=Signer.from_settings(settings),
            metrics=metrics,
            clock=clock,
            tokens=tokens,
            keyring=settings.keyring(),
            watermarks=WatermarkReader(kafka.common()) if kafka is not None else None,
        )

    _serve_with(app, state, open_services, heartbeats if background else None)
    return app


def _serve_with(
    app: Quart,
    state: dict[str, AuditServices],
    open_services: Callable[[], Awaitable[AuditServices]],
    heartbeats: Heartbeats | None,
) -> None:
    """The services open in `before_serving` (with the scheduled jobs when `heartbeats` is
    given), refresh the gauges before a scrape, and close in `after_serving`."""
    jobs: list[asyncio.Task[None]] = []

    @app.before_serving
    async def start() -> None:
        services = state["services"] = await open_services()
        app.extensions["audit"] = services
        if heartbeats is not None:
            jobs.extend(_start_jobs(services, heartbeats))

    @app.before_request
    async def refresh_metrics() -> None:
        if request.path == "/metrics" and "services" in state:
            services = state["services"]
            await services.metrics.refresh(services.pool, services.watermarks)

    @app.after_serving
    async def stop() -> None:
        services = state.pop("services", None)
        if services is None:
            return
        if heartbeats is not None:
            heartbeats.stop()
        services.stopping.set()
        await _stop_jobs(jobs)
        await services.pool.close()
        if services.watermarks is not None:
            await asyncio.to_thread(services.watermarks.close)


def _start_jobs(services: AuditServices, heartbeats: Heartbeats) -> list[asyncio.Task[None]]:
    """Digest signing, retention purge and chain verification, each on its own heartbeat."""
    settings = services.settings
    return [
        heartbeats.spawn(
            job.__name__, interval + settings.job_max_runtime, services.every(interval, job)
        )
        for interval, job in (
            (settings.digest_interval, services.sign_digests),
            (settings.purge_interval, services.scheduled_purge),
            (settings.verify_interval, services.scheduled_verify),
        )
    ]


async def _stop_jobs(jobs: list[asyncio.Task[None]]) -> None:
    """A run in progress gets a moment to finish before the pool closes under it."""
    if not jobs:
        return
    _, running = await asyncio.wait(jobs, timeout=JOB_SHUTDOWN_SECONDS)
    for job in running:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    jobs.clear()
