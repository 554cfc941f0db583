"""A chatbot's WebSocket feed as the chaos oracle needs it: every notification frame kept,
and on any disconnect a reconnect with `since=<last seq>`, as the chatbot does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

RECONNECT_DELAY = 0.25


@dataclass(frozen=True, slots=True)
class Seen:
    """One notification frame: which connection it came on and what it said."""

    connection: int
    seq: int
    notification_id: str
    kind: str
    task_id: str | None
    event_id: str
    at: float  # time.monotonic()


@dataclass
class Feed:
    """Everything one user's feed saw, across reconnects."""

    user: str
    seen: list[Seen] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)
    connections: int = 0
    last_seq: int = 0

    def seqs(self) -> list[int]:
        return [s.seq for s in self.seen]

    def for_task(self, task_id: str) -> list[Seen]:
        return [s for s in self.seen if s.task_id == task_id]


async def follow(url: str, token: str, feed: Feed, stop: asyncio.Event) -> None:
    """Keep one connection open until `stop`, reconnecting with `since` after any failure."""
    url = url.replace("http://", "ws://", 1)
    while not stop.is_set():
        query = f"token={token}&since={feed.last_seq}"
        try:
            async with connect(f"{url}/ws?{query}", open_timeout=5, close_timeout=2) as ws:
                feed.connections += 1
                await _read(ws, feed, feed.connections, stop)
        except (OSError, TimeoutError, InvalidHandshake, InvalidStatus) as exc:
            feed.closes.append(f"connect: {type(exc).__name__}")
        except ConnectionClosed as exc:
            feed.closes.append(f"closed: {exc.rcvd.code if exc.rcvd else 'no close frame'}")
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECONNECT_DELAY)


async def _read(ws: ClientConnection, feed: Feed, number: int, stop: asyncio.Event) -> None:
    stopping = asyncio.create_task(stop.wait())
    try:
        while True:
            receiving = asyncio.create_task(ws.recv())
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await receiving
                return
            frame = json.loads(receiving.result())
            if frame.get("type") != "notification":
                continue
            note = frame["notification"]
            seq = int(note["seq"])
            feed.seen.append(
                Seen(
                    number,
                    seq,
                    note["id"],
                    note["kind"],
                    note.get("task_id"),
                    note["event_id"],
                    time.monotonic(),
                )  # fmt: skip
            )
            feed.last_seq = max(feed.last_seq, seq)
    finally:
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping


async def never_read(url: str, token: str, opened: asyncio.Event, stop: asyncio.Event) -> None:
    """A WebSocket client that never reads: a tiny receive buffer and no recv() calls, so
    the server's writes back up until the hub gives up on it (it counts that in
    `taskflow_websocket_dropped_connections_total{reason="slow_client"}`)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    # max_queue=1: the library stops reading the socket once one frame waits unread.
    ws = await connect(f"ws://{host}:{port}/ws?token={token}", sock=sock, max_queue=1,
                       ping_interval=None)  # fmt: skip
    opened.set()
    try:
        await stop.wait()
    finally:
        ws.transport.abort()
