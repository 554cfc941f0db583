"""Erased users -> their sockets closed on every node: Postgres LISTEN on `notify_erased`.

The worker's erasure transaction notifies the channel on commit; each hub closes that
user's connections with 4403 (docs/api/websocket.md). `recent` remembers who was erased
while this process runs, so /ws refuses a connection whose database check ran just
before the erasure committed (checked with no await before the hub registers it). After
a lost listener connection, every connected user is checked against the database.
"""

from __future__ import annotations

import logging
from typing import Any

from notify_ws.db import erasure as er
from notify_ws.hub.hub import Hub

log = logging.getLogger(__name__)

USER_ERASED = 4403
USER_ERASED_REASON = "user erased"


class ErasureListener:
    """Attached to the hub's LISTEN connection (`ReadListener`), on each (re)connect."""

    def __init__(self, pool: Any, hub: Hub, recent: set[str]) -> None:
        self._pool, self._hub, self.recent = pool, hub, recent

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, user_id: str) -> None:
        self.recent.add(user_id)
        closed = self._hub.close_user(user_id, USER_ERASED)
        if closed:
            log.info("closed %d socket(s) of erased user %s", closed, user_id)

    async def attach(self, conn: Any) -> None:
        """Listen on `conn`, then close sockets of users erased while nobody listened."""
        await conn.add_listener(er.ERASED_CHANNEL, self._on_notify)
        users = sorted({c.user_id for c in self._hub.connections()})
        if not users:
            return
        async with self._pool.acquire() as db:
            erased = await er.erased_among(db, users)
        for user_id in erased:
            self._on_notify(None, 0, er.ERASED_CHANNEL, user_id)
