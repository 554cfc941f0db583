"""Entry points `deploy/cli.py` calls: `serve`, `migrate`, `purge`, `rewrap-keys`,
`reapply-erasures`."""

from __future__ import annotations

from audit_store.app import SERVICE_NAME, create_app
from audit_store.db.keys import rewrap_keys as run_rewrap
from audit_store.db.migrate import migrate as apply_migrations
from audit_store.db.pool import create_pool
from audit_store.erasure import reapply
from audit_store.ingest import append_local
from audit_store.ports import utc_now
from audit_store.retention import purge as run_purge
from audit_store.settings import AuditSettings
from events.kafka import KafkaSettings
from runtime.servers import ServerOptions
from runtime.service import ServiceSpec, run_service


def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the audit API (and its digest, purge and verify schedules) until SIGINT/SIGTERM."""
    settings = AuditSettings()
    run_service(
        ServiceSpec(
            name=SERVICE_NAME,
            build_app=lambda: create_app(settings, kafka=KafkaSettings()),
            options=ServerOptions(host=host or settings.host, port=port or settings.port),
        )
    )


async def migrate() -> None:
    """Apply the audit database's pending migrations."""
    await apply_migrations(AuditSettings().database_url)


async def purge() -> None:
    """Apply retention once (legal holds respected); the purge is itself audited."""
    settings = AuditSettings()
    pool = await create_pool(settings.database_url, 2)
    try:
        result = await run_purge(
            pool,
            settings.retention_days,
            settings.retention_default_days,
            utc_now,
            actor="cli",
            batch=settings.purge_batch,
        )
    finally:
        await pool.close()
    print(f"purged {result.purged} entries ({result.held} held); recorded as {result.event_id}")


async def rewrap_keys() -> None:
    """Re-wrap every user data key with the current KEK (after a KEK rotation)."""
    settings = AuditSettings()
    pool = await create_pool(settings.database_url, 2)
    try:
        done = await run_rewrap(pool, settings.keyring())
    finally:
        await pool.close()
    print(f"re-wrapped {done} data keys with key-encryption key {settings.kek_id!r}")


async def reapply_erasures() -> None:
    """After restoring a backup: shred again every erasure the store has recorded."""
    settings = AuditSettings()
    pool = await create_pool(settings.database_url, 2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            now = utc_now()
            records = await reapply(conn, now)
            if records:
                await append_local(conn, records, now)
    finally:
        await pool.close()
    print(f"re-applied {len(records)} erasures")
