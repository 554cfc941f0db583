"""PostgreSQL URLs and databases every service shares: derive a database's URL, create or
drop one. The embedded server for local runs lives in `deploy.database`."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server (keeps query, e.g. host=)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def tortoise_url(url: str) -> str:
    """Tortoise's asyncpg scheme for a `postgresql://` URL."""
    parts = urlsplit(url)
    return urlunsplit(("asyncpg", *parts[1:]))


async def ensure_database(admin_url: str, database: str) -> str:
    """Create `database` if missing; returns its URL."""
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    return with_database(admin_url, database)


async def drop_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()
