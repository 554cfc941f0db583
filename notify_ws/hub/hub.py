"""The hub: this node's WebSocket connections by user, fed from Kafka and from read marks.

Fan-out never awaits: each connection has a bounded queue, and a connection whose queue is
full is closed with 1013 (try again later) instead of slowing anyone else. Frames arrive
from the Kafka feed (every instance's notifications) and, for notifications this process's
worker committed, straight from the worker (the fast path); the per-connection seq filter
sends each once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol

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


class Writer(Protocol):
    """Frames out at once, several in one write; False: not now (use the async `send`)."""

    def write(self, frames: Sequence[str]) -> bool: ...


class Connection:
    """One WebSocket. What waits to be sent sits in a bounded deque made on demand and is
    written out once the current loop step ends (all of it in one write when the socket
    takes it at once); a sender task exists only while a write has to wait: an idle socket
    costs this object and its handler's task, nothing more."""

    __slots__ = ("user_id", "limit", "pending", "drain", "send", "writer", "sender",
                 "handler", "due", "stopping", "close_code", "error", "last_sent",
                 "last_queued", "unread")  # fmt: skip

    def __init__(self, user_id: str, queue_size: int) -> None:
        self.user_id = user_id
        self.limit = queue_size
        self.pending: deque[Item] | None = None
        # Set by the session once the replay is sent: schedules the queued items' sending.
        self.drain: Callable[[Connection], None] | None = None
        self.send: Callable[[str], Awaitable[None]] | None = None
        self.writer: Writer | None = None  # the synchronous way out, when the server has one
        self.sender: asyncio.Task[None] | None = None
        self.handler: asyncio.Task[Any] | None = None  # the task that reads the socket
        self.due = False  # scheduled for the end of the current loop step
        self.stopping = False
        self.close_code: int | None = None
        self.error: BaseException | None = None
        self.last_sent = 0
        self.last_queued = 0  # the highest notification seq queued
        self.unread = 0

    @property
    def queued(self) -> int:
        return len(self.pending) if self.pending else 0

    def put(self, item: Item) -> bool:
        """Queue `item` (False when the queue is full) and schedule its sending."""
        pending = self.pending
        if pending is None:
            pending = self.pending = deque()
        elif len(pending) >= self.limit:
            return False
        pending.append(item)
        self.wake()
        return True

    def wake(self) -> None:
        if (
            not self.due
            and self.sender is None
            and self.drain is not None
            and self.pending
            and not self.stopping
        ):
            self.drain(self)

    def kick(self, code: int) -> None:
        """Stop sending and close with `code` (the handler does the closing)."""
        if self.close_code is None:
            self.close_code = code
        self._stop()

    def fail(self, error: BaseException) -> None:
        """Sending failed: end the connection and let its handler raise `error`."""
        if self.error is None:
            self.error = error
        self._stop()

    def _stop(self) -> None:
        if self.stopping:
            return  # cancel the handler once: it uncancels exactly once
        self.stopping = True
        if self.sender is not None and self.sender is not asyncio.current_task():
            self.sender.cancel()
        if self.handler is not None:
            self.handler.cancel()


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
        if conn.stopping:
            return
        if not conn.put(item):
            self._metrics.slow_disconnects.inc()
            conn.kick(TRY_AGAIN_LATER)

    def publish(self, user_id: str, seq: int, frame: str | Note) -> int:
        """Queue a notification frame for every connection of `user_id` that has not had
        its seq yet; returns how many.

        The fast path and the Kafka feed both bring this node's notifications: the copy
        that comes second is dropped here, before it takes a place in the queue (the
        sender would drop it anyway), so repeats never close a client that keeps up."""
        conns = self._by_user.get(user_id)
        if not conns:
            return 0
        note = frame if isinstance(frame, Note) else Note(frame)
        queued = 0
        for conn in tuple(conns):
            if seq <= conn.last_queued or seq <= conn.last_sent:
                continue
            conn.last_queued = seq
            self.offer(conn, (NOTE, seq, note))
            queued += 1
        return queued

    def counts(self, user_id: str, unread: int, last_seq: int) -> None:
        for conn in tuple(self._by_user.get(user_id, ())):
            self.offer(conn, (COUNT, unread, last_seq))

    def close_user(self, user_id: str, code: int) -> int:
        """Close every connection of `user_id` with `code` (4403 once the user is erased;
        the endpoint maps the code to its reason); returns how many."""
        conns = tuple(self._by_user.get(user_id, ()))
        for conn in conns:
            conn.kick(code)
        return len(conns)

    async def shutdown(self, timeout: float) -> None:
        """Close every connection with 1001 and wait (bounded) for them to go."""
        for conn in list(self.connections()):
            conn.kick(GOING_AWAY)
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            pass
