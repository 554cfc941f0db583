"""PostgreSQL URLs and databases every service shares: derive a database's URL, create or
drop one. The embedded server for local runs lives in `deploy.database`."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg


async def keep_session(_conn: asyncpg.Connection) -> None:
    """A pool `reset` that sends nothing to the server.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL` on every release: one more round trip per acquire, which was two of the notification
    worker's twelve statements per change. Our pooled connections hold no session state:
    advisory locks are transaction-scoped (the migration lock unlocks itself), LISTEN runs
    on connections of its own and nothing SETs session variables. asyncpg still rolls back
    a transaction left open and drops listeners before calling this.
    """


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """An asyncpg pool whose release costs no round trip (`keep_session`)."""
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=keep_session)
    assert pool is not None  # noqa: S101 - only None when not awaited
    return pool


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
