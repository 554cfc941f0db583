"""Read marks -> unread_count frames on every node: Postgres LISTEN on `notify_read`.

A mark made through REST, or through another node's WebSocket, reaches every connection
of that user here; counts are re-read from the counter row, never computed from deltas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from notify_ws.db import notifications as nt
from notify_ws.hub.erasures import ErasureListener
from notify_ws.hub.hub import Hub

log = logging.getLogger(__name__)


class ReadListener:
    def __init__(
        self, database_url: str, pool: Any, hub: Hub, erasures: ErasureListener | None = None
    ) -> None:
        self._url, self._pool, self._hub = database_url, pool, hub
        # Erased users' sockets are closed through the same LISTEN connection.
        self._erasures = erasures
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.ready = asyncio.Event()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, user_id: str) -> None:
        if self._hub.has_user(user_id):
            self._dirty.add(user_id)
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(self._url)
                await conn.add_listener(nt.READ_CHANNEL, self._on_notify)
                if self._erasures is not None:
                    await self._erasures.attach(conn)
                self.ready.set()
                await self._drain(conn, stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("read listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)

    async def _drain(self, conn: Any, stop: asyncio.Event) -> None:
        while not stop.is_set() and not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    await self._wake.wait()
            self._wake.clear()
            users, self._dirty = self._dirty, set()
            for user_id in users:
                async with self._pool.acquire() as db:
                    unread, last_seq = await nt.counter(db, user_id)
                self._hub.counts(user_id, unread, last_seq)
