"""The audit database's migrations (`migrations/NNNN_name.sql`), applied by the shared runner."""

from __future__ import annotations

import asyncpg

from runtime import migrations

# The key earlier audit migrators took: old and new code exclude each other.
LOCK_KEY = 0x7A0D17
PACKAGE = "audit_store.db.migrations"


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply the pending migrations on `conn`; returns the versions applied (`0001_name`)."""
    applied = await migrations.apply_migrations(conn, PACKAGE, LOCK_KEY)
    return [m.version for m in applied]


async def migrate(url: str) -> list[str]:
    """Connect to `url` and apply pending migrations."""
    applied = await migrations.migrate(url, PACKAGE, LOCK_KEY)
    return [m.version for m in applied]
