"""Versioned SQL migrations (`migrations/NNNN_name.sql`) applied in order, once each."""

from __future__ import annotations

from importlib import resources

import asyncpg

LOCK_KEY = 0x6E6F74696679  # "notify": one migrator at a time across processes


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every shipped migration, in order."""
    folder = resources.files("notify_ws.db.migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text()) for name in names]


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; returns the versions applied now."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for version, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", version
                    )
                applied.append(version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()
