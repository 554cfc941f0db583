"""What the audit service's handlers and background jobs share, built once per app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from audit_store.crypto import Keyring
from audit_store.digests import Signer, create_digests
from audit_store.metrics import AuditMetrics, WatermarkReader
from audit_store.ports import Clock
from audit_store.retention import purge
from audit_store.settings import AuditSettings
from audit_store.verify import verify
from runtime.heartbeat import beat
from webapi.auth import TokenVerifier

log = logging.getLogger(__name__)


@dataclass
class AuditServices:
    settings: AuditSettings
    pool: asyncpg.Pool
    signer: Signer
    metrics: AuditMetrics
    clock: Clock
    tokens: TokenVerifier
    keyring: Keyring
    watermarks: WatermarkReader | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def sign_digests(self) -> None:
        created = await create_digests(self.pool, self.signer, self.clock)
        if created:
            log.info("signed %d audit digests", created)

    async def scheduled_purge(self) -> None:
        result = await purge(
            self.pool,
            self.settings.retention_days,
            self.settings.retention_default_days,
            self.clock,
            batch=self.settings.purge_batch,
        )
        log.info("audit purge: %d tombstoned, %d held", result.purged, result.held)

    async def scheduled_verify(self) -> None:
        report = await verify(self.pool, self.signer)
        self.metrics.record_verify(report, time.time())
        if not report.ok:
            log.error("audit verification failed: %s", report.as_json())

    async def every(self, interval: timedelta, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` every `interval` until the app stops; a failed run is logged, not fatal.
        Beats (run via `Heartbeats.spawn`) before each run: silent at most a run and an
        interval."""
        while not self.stopping.is_set():
            beat()
            try:
                await job()
            except Exception:
                log.exception("audit background job %s failed", job.__name__)
            try:
                await asyncio.wait_for(self.stopping.wait(), interval.total_seconds())
            except TimeoutError:
                continue
