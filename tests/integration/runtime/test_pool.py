"""The shared asyncpg pool: a release sends nothing to the server, and what a connection
must not carry to its next user is still undone (a transaction left open is rolled back)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.database import create_pool

pytestmark = pytest.mark.integration


async def test_releasing_a_connection_sends_no_statement(pg_admin_url: str) -> None:
    pool = await create_pool(pg_admin_url, max_size=1)
    sent: list[str] = []

    def record(query: Any) -> None:
        sent.append(query.query)

    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(record)
            await conn.fetchval("SELECT 1")
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 2")
            conn.remove_query_logger(record)
    finally:
        await pool.close()
    # asyncpg's default reset would have sent "SELECT pg_advisory_unlock_all(); …" between.
    assert sent == ["SELECT 1", "SELECT 2"]


async def test_a_transaction_left_open_is_rolled_back_on_release(pg_admin_url: str) -> None:
    pool = await create_pool(pg_admin_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x int) ON COMMIT DROP")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            found = await conn.fetchval("SELECT to_regclass('pg_temp.left_open') IS NOT NULL")
    finally:
        await pool.close()
    assert found is False
