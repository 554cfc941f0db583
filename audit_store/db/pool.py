"""asyncpg pools, created inside the event loop that uses them."""

from __future__ import annotations

import asyncpg


async def create_pool(url: str, size: int = 5) -> asyncpg.Pool:
    """A pool of up to `size` connections; `json` columns come back as their exact text."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=size)
    assert pool is not None  # noqa: S101 - only None when not awaited
    return pool
