"""asyncpg pools, created inside the event loop that uses them."""

from __future__ import annotations

import asyncpg

from runtime.database import create_pool as create_shared_pool


async def create_pool(url: str, size: int = 5) -> asyncpg.Pool:
    """A pool of up to `size` connections; `json` columns come back as their exact text."""
    return await create_shared_pool(url, max_size=size)
