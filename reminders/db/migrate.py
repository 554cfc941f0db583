"""The reminder database's migrations (`migrations/NNNN_name.sql`), applied by the shared
runner. Its `schema_migrations` records `(version integer, name)`, unlike the other services'."""

from __future__ import annotations

import asyncpg

from runtime import migrations
from runtime.migrations import TableShape

# Serialises concurrent migrators (API and dataflow starting together); the key earlier
# reminder migrators took, so old and new code exclude each other.
LOCK_KEY = 0x7AF10004
PACKAGE = "reminders.db.migrations"


async def apply_migrations(conn: asyncpg.Connection) -> list[int]:
    """Apply the missing migrations in one transaction each; returns the versions applied."""
    applied = await migrations.apply_migrations(
        conn, PACKAGE, LOCK_KEY, new_table=TableShape.NUMBERED
    )
    return [m.number for m in applied]


async def migrate_url(url: str) -> list[int]:
    """Connect to `url` and apply pending migrations."""
    applied = await migrations.migrate(url, PACKAGE, LOCK_KEY, new_table=TableShape.NUMBERED)
    return [m.number for m in applied]
