"""The notification database's migrations (`migrations/NNNN_name.sql`), applied by the shared
runner."""

from __future__ import annotations

from runtime import migrations

# "notify": the key earlier notify migrators took, so old and new code exclude each other.
LOCK_KEY = 0x6E6F74696679
PACKAGE = "notify_ws.db.migrations"


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; returns the versions applied now (`0001_name`)."""
    applied = await migrations.migrate(database_url, PACKAGE, LOCK_KEY)
    return [m.version for m in applied]
