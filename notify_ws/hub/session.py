"""One WebSocket session: replay from the database, then live frames with no gap and no
duplicate (only seq above what this connection was sent), unread counts, client frames."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from opentelemetry import context as otel_context

from notify_ws.clock import Clock
from notify_ws.db import notifications as nt
from notify_ws.db.notifications import Notification
from notify_ws.hub.hub import COUNT, NOTE, RAW, Connection, Hub, Note
from notify_ws.metrics import Metrics
from observability.messaging import websocket_send_span
from webapi.websocket import ClientDisconnected, direct_writer

Send = Callable[[str], Awaitable[None]]
Receive = Callable[[], Awaitable[str | bytes]]
MAX_READ_IDS = 1000


def note_frame(note: Notification) -> str:
    return orjson.dumps({"type": "notification", "notification": note.body_json()}).decode()


def count_frame(count: int) -> str:
    return orjson.dumps({"type": "unread_count", "count": count}).decode()


def error_frame(detail: str) -> str:
    return orjson.dumps({"type": "error", "detail": detail}).decode()


PONG = orjson.dumps({"type": "pong"}).decode()


class Session:
    def __init__(self, pool: Any, hub: Hub, metrics: Metrics, clock: Clock) -> None:
        self._pool, self._hub, self._metrics, self._clock = pool, hub, metrics, clock
        # Label lookups take a lock: the children are resolved once in Metrics.
        self._sent, self._received = metrics.frames_sent, metrics.frames_received
        # One bound method shared by every connection (no closure per socket).
        self._schedule_bound = self._schedule
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: list[Connection] = []  # connections with frames for the next flush

    def attach(self, conn: Connection, send: Send) -> None:
        """Live from here on: what `conn` queues is sent (queued during the replay: now)."""
        conn.send = send
        conn.writer = direct_writer(send)
        conn.drain = self._schedule_bound
        conn.wake()

    def _schedule(self, conn: Connection) -> None:
        """`conn.drain`: send its queue when this loop step ends, with whatever else comes
        for it until then (a feed batch, a worker batch): one write, one count."""
        conn.due = True
        self._due.append(conn)
        if len(self._due) == 1:
            # The loop once: asyncio.get_running_loop asks the OS for the pid each time.
            loop = self._loop or asyncio.get_running_loop()
            self._loop = loop
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        due, self._due = self._due, []
        sent = 0
        for conn in due:
            conn.due = False
            if conn.stopping or conn.sender is not None or not conn.pending:
                continue
            try:
                written = self._write(conn)
            except Exception as exc:  # noqa: BLE001 - the socket failed: its handler raises it
                conn.fail(exc)
                continue
            if written >= 0:
                sent += written
                continue
            assert conn.send is not None  # noqa: S101 - set by attach() with drain
            assert self._loop is not None  # noqa: S101 - set by _schedule
            conn.sender = self._loop.create_task(self._drain(conn, conn.send))
        if sent:
            self._sent.inc(sent)  # once per flush: each inc takes a lock

    def _write(self, conn: Connection) -> int:
        """Write `conn`'s whole queue at once: its frames, then one count if anything changed
        it; returns how many frames. -1, with nothing written, when part of it has to wait:
        a seq gap (read from the database), a traced frame (its span wraps the send), or a
        socket that cannot take it now; the sender task then sends the queue."""
        writer, pending = conn.writer, conn.pending
        if writer is None or pending is None:
            return -1
        frames: list[str] = []
        last, unread, counted = conn.last_sent, conn.unread, True
        for kind, a, b in pending:
            if kind == NOTE:
                if a <= last:
                    continue  # replayed, sent by the fast path, or re-read
                if a != last + 1 or b.context is not None:
                    return -1
                frames.append(b.frame)
                last, unread, counted = a, unread + 1, False
            elif kind == COUNT:
                # Notifications sent here after the counter was read are all still unread.
                unread, counted = a + max(0, last - b), False
            else:
                frames.append(b)
        if not counted:
            frames.append(count_frame(unread))
        if frames and not writer.write(frames):
            return -1
        conn.pending = None  # an idle socket keeps no buffer
        conn.last_sent, conn.unread = last, unread
        return len(frames)

    async def _send(self, send: Send, frame: str) -> None:
        await send(frame)
        self._sent.inc()

    async def _send_note(self, conn: Connection, send: Send, seq: int, note: Note) -> None:
        """A live notification frame, in a `websocket send` span that continues the trace of
        the Kafka message it came from (made here, only for frames actually sent)."""
        if note.context is None:
            await self._send(send, note.frame)
            return
        token = otel_context.attach(note.context)
        try:
            with websocket_send_span(
                user_id=conn.user_id, notification_id=note.notification_id, seq=seq,
                event_id=note.event_id,
            ):  # fmt: skip
                await self._send(send, note.frame)
        finally:
            otel_context.detach(token)

    async def start(self, conn: Connection, send: Send, since: int | None) -> None:
        """Replay and the first count, then hand the connection's queue to a sender."""
        async with self._pool.acquire() as db:
            # One snapshot: the counter and the replay agree on what exists.
            async with db.transaction(isolation="repeatable_read", readonly=True):
                unread, last_seq = await nt.counter(db, conn.user_id)
                replay = (
                    await nt.since(db, conn.user_id, since, last_seq) if since is not None else []
                )
        for note in replay:
            await self._send(send, note_frame(note))
        conn.last_sent, conn.unread = last_seq, unread
        await self._send(send, count_frame(unread))
        self.attach(conn, send)

    async def _drain(self, conn: Connection, send: Send) -> None:
        """Send what is queued, then end: the next item starts a new sender."""
        counted = True
        try:
            while pending := conn.pending:
                kind, a, b = pending.popleft()
                if kind == NOTE:
                    # Not at or below last_sent: replayed, sent by the fast path, or re-read.
                    if a > conn.last_sent:
                        if a > conn.last_sent + 1:
                            await self._fill_gap(conn, send, a)
                        await self._send_note(conn, send, a, b)
                        conn.last_sent = a
                        conn.unread += 1
                        counted = False
                elif kind == COUNT:
                    # Notifications sent here after the counter was read are all still unread.
                    conn.unread = a + max(0, conn.last_sent - b)
                    counted = False
                else:
                    await self._send(send, b)
                if not counted and not pending:  # one count per burst, not one per frame
                    counted = True
                    await self._send(send, count_frame(conn.unread))
        except Exception as exc:  # noqa: BLE001 - the socket failed: its handler raises it
            conn.fail(exc)
        finally:
            if not conn.pending:
                conn.pending = None  # an idle socket keeps no buffer
            conn.sender = None

    async def _fill_gap(self, conn: Connection, send: Send, upto: int) -> None:
        """The feed skipped something (e.g. it started late): take it from the database."""
        async with self._pool.acquire() as db:
            missing = await nt.since(db, conn.user_id, conn.last_sent, upto - 1)
        for note in missing:
            await self._send(send, note_frame(note))
            conn.last_sent = note.seq
            conn.unread += 0 if note.read else 1

    async def receive(self, conn: Connection, receive: Receive) -> None:
        """Client frames: read and ping; anything else gets an error frame."""
        while True:
            raw = await receive()
            self._received.inc()
            reply = await self.handle(conn, raw)
            if reply is not None:
                self._hub.offer(conn, (RAW, 0, reply))

    async def handle(self, conn: Connection, raw: str | bytes) -> str | None:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return error_frame("frames must be JSON objects")
        if not isinstance(frame, dict):
            return error_frame("frames must be JSON objects")
        kind = frame.get("type")
        if kind == "ping":
            return PONG
        if kind != "read":
            return error_frame(f"unknown frame type {kind!r}; expected 'read' or 'ping'")
        ids = frame.get("ids")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_READ_IDS:
            return error_frame(f"'ids' must be a list of 1..{MAX_READ_IDS} notification ids")
        try:
            parsed = [uuid.UUID(i) for i in ids]
        except (TypeError, ValueError, AttributeError):
            return error_frame("'ids' must hold notification ids (UUIDs)")
        async with self._pool.acquire() as db, db.transaction():
            # Another user's ids match nothing: no error, so existence does not leak.
            await nt.mark_read(db, conn.user_id, parsed, self._clock.now())
        return None


async def run_connection(
    session: Session, hub: Hub, conn: Connection, send: Send, receive: Receive, since: int | None
) -> int | None:
    """Run in the socket's own task until the client leaves or the hub kicks it (which
    cancels this task once); returns the close code to send. `receive` raising ends it:
    `ClientDisconnected` quietly, anything else (a policy violation) to the caller."""
    task = asyncio.current_task()
    assert task is not None  # noqa: S101 - always called from a task
    conn.handler = task
    hub.register(conn)
    try:
        await session.start(conn, send, since)
        await session.receive(conn, receive)
    except ClientDisconnected:
        pass
    except asyncio.CancelledError:
        if not conn.stopping or task.uncancel() > 0:
            raise  # cancelled by someone else (the server shutting down)
    finally:
        conn.handler = None
        hub.unregister(conn)
        conn.stopping = True  # no sender may start after this
        if conn.sender is not None:
            conn.sender.cancel()
    if conn.error is not None:
        raise conn.error
    return conn.close_code
