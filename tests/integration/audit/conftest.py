"""Audit fixtures: one migrated audit database per session, emptied before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from audit_store.db.migrate import migrate
from audit_store.db.pool import create_pool

TABLES = (
    "audit_entries, audit_chain_heads, audit_digests, audit_holds, audit_user_keys,"
    " audit_erasures, audit_erasure_progress"
)


@pytest.fixture(scope="session")
async def audit_db_session(create_database: Callable[[str], Awaitable[str]]) -> str:
    url = await create_database("audit")
    await migrate(url)
    return url


@pytest.fixture
async def audit_db(audit_db_session: str) -> str:
    """The session's audit database, empty (TRUNCATE skips the append-only row trigger)."""
    conn = await asyncpg.connect(audit_db_session)
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    finally:
        await conn.close()
    return audit_db_session


@pytest.fixture
async def pool(audit_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(audit_db)
    yield pool
    await pool.close()
