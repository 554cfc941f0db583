"""The hub: this node's WebSocket connections by user, fed from Kafka and from read marks.

Fan-out never awaits: each connection has a bounded queue, and a connection whose queue is
full is closed with 1013 (try again later) instead of slowing anyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from opentelemetry.context import Context

from notify_ws.metrics import Metrics

# Queue items: (NOTE, seq, Note) | (COUNT, unread, last_seq) | (RAW, 0, frame)
NOTE, COUNT, RAW = 0, 1, 2
TRY_AGAIN_LATER = 1013
GOING_AWAY = 1001

Item = tuple[int, int, Any]


class Note:
    """A notification frame with what its `websocket send` span needs: the trace context
    of the Kafka message it came from, extracted once per message, not per connection."""

    __slots__ = ("frame", "context", "notification_id", "event_id")

    def __init__(
        self,
        frame: str,
        context: Context | None = None,
        notification_id: str | None = None,
        event_id: str | None = None,
    ) -> None:
        self.frame, self.context = frame, context
        self.notification_id, self.event_id = notification_id, event_id


class Connection:
    """One WebSocket: a bounded queue drained by its sender task."""

    __slots__ = ("user_id", "queue", "task", "close_code", "last_sent", "unread")

    def __init__(self, user_id: str, queue_size: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[Item] = asyncio.Queue(queue_size)
        self.task: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.last_sent = 0
        self.unread = 0

    def kick(self, code: int) -> None:
        """Stop sending and close with `code` (the handler does the closing)."""
        if self.close_code is None:
            self.close_code = code
        if self.task is not None:
            self.task.cancel()


class Hub:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._by_user: dict[str, set[Connection]] = {}
        self._count = 0
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return self._count

    def connections(self) -> Iterator[Connection]:
        for conns in self._by_user.values():
            yield from conns

    def has_user(self, user_id: str) -> bool:
        return user_id in self._by_user

    def register(self, conn: Connection) -> None:
        self._by_user.setdefault(conn.user_id, set()).add(conn)
        self._count += 1
        self._empty.clear()
        self._metrics.connections.set(self._count)

    def unregister(self, conn: Connection) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self._by_user[conn.user_id]
        self._count -= 1
        if not self._count:
            self._empty.set()
        self._metrics.connections.set(self._count)

    def offer(self, conn: Connection, item: Item) -> None:
        try:
            conn.queue.put_nowait(item)
        except asyncio.QueueFull:
            self._metrics.slow_disconnects.inc()
            conn.kick(TRY_AGAIN_LATER)

    def publish(self, user_id: str, seq: int, frame: str | Note) -> int:
        """Queue a notification frame for every connection of `user_id`; returns how many."""
        conns = self._by_user.get(user_id)
        if not conns:
            return 0
        note = frame if isinstance(frame, Note) else Note(frame)
        for conn in tuple(conns):
            self.offer(conn, (NOTE, seq, note))
        return len(conns)

    def counts(self, user_id: str, unread: int, last_seq: int) -> None:
        for conn in tuple(self._by_user.get(user_id, ())):
            self.offer(conn, (COUNT, unread, last_seq))

    async def shutdown(self, timeout: float) -> None:
        """Close every connection with 1001 and wait (bounded) for them to go."""
        for conn in list(self.connections()):
            conn.kick(GOING_AWAY)
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            pass
