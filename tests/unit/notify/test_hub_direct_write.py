"""The hub's direct writes, without a network: `direct_writer` on a real uvicorn wsproto
protocol and Quart app (fake transport, wsproto client), and the session's flush with a
hand-written writer (one write per socket and loop step, one count after the run)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from opentelemetry.context import Context
from quart import Quart, websocket
from uvicorn.config import Config
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol
from uvicorn.server import ServerState
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from notify_ws.hub.hub import COUNT, Connection, Hub, Note
from notify_ws.hub.session import Session
from notify_ws.metrics import Metrics
from webapi.websocket import (
    ClientDisconnected,
    DirectWriter,
    InlineWebsocketConnection,
    direct_writer,
)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, _name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def serve_one(frames: list[str], deflate: bool = False) -> tuple[Any, list[str], int]:
    """One socket through uvicorn's wsproto protocol into a Quart handler that writes
    `frames` with `direct_writer`; returns the writer, what the client decoded, writes."""
    app = Quart(__name__)
    app.asgi_websocket_class = InlineWebsocketConnection
    found: list[DirectWriter | None] = []
    done = asyncio.Event()

    @app.websocket("/ws")
    async def handler() -> None:
        await websocket.accept()
        writer = direct_writer(websocket.send)
        found.append(writer)
        if writer is not None:
            assert writer.write(frames)
        try:
            await websocket.receive()
        except ClientDisconnected:
            done.set()

    config = Config(app=app, ws="wsproto", lifespan="off", ws_per_message_deflate=deflate)
    protocol = WSProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    client = WSConnection(ConnectionType.CLIENT)
    protocol.data_received(client.send(Request(host="test", target="/ws")))
    async with asyncio.timeout(5):
        while not found:
            await asyncio.sleep(0)
    writes = len(transport.written)
    client.receive_data(b"".join(transport.written))
    events = list(client.events())
    assert isinstance(events[0], AcceptConnection)
    texts = [e.data for e in events if isinstance(e, TextMessage)]
    protocol.connection_lost(None)
    async with asyncio.timeout(5):
        await done.wait()
    return found[0], texts, writes


async def test_direct_writer_sends_several_frames_in_one_write_on_uvicorn_wsproto() -> None:
    frames = ["a", "é" * 100, "x" * 70_000]  # one-, two- and eight-byte lengths
    writer, texts, writes = await serve_one(frames)
    assert isinstance(writer, DirectWriter)
    assert texts == frames
    assert writes == 2  # the handshake answer, then all three frames at once


async def test_no_direct_writer_with_permessage_deflate() -> None:
    writer, texts, _ = await serve_one(["a"], deflate=True)
    assert writer is None and texts == []


class FakeWriter:
    """The direct way out; `accept=False` plays a transport that asked to pause."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.writes: list[list[str]] = []

    def write(self, frames: Any) -> bool:
        if not self.accept:
            return False
        self.writes.append(list(frames))
        return True


def live(writer: FakeWriter) -> tuple[Hub, Session, Connection, list[str], Metrics]:
    metrics = Metrics()
    hub = Hub(metrics)
    session = Session(pool=None, hub=hub, metrics=metrics, clock=None)  # type: ignore[arg-type]
    conn, sent = Connection("u", 16), list[str]()

    async def send(frame: str) -> None:
        sent.append(frame)

    hub.register(conn)
    session.attach(conn, send)
    conn.writer = writer
    return hub, session, conn, sent, metrics


async def settle(conn: Connection) -> None:
    async with asyncio.timeout(5):
        while conn.due or conn.sender is not None:
            await (conn.sender or asyncio.sleep(0))


def count(n: int) -> str:
    return orjson.dumps({"type": "unread_count", "count": n}).decode()


async def test_a_run_of_notifications_is_one_write_with_one_count_after_it() -> None:
    writer = FakeWriter()
    hub, _, conn, sent, metrics = live(writer)
    for seq in (1, 2, 3):
        hub.publish("u", seq, f"n{seq}")
    hub.publish("u", 2, "n2 again")  # a repeat (the Kafka copy of a fast-path frame)
    await settle(conn)
    assert writer.writes == [["n1", "n2", "n3", count(3)]]
    assert sent == [] and conn.pending is None
    assert (conn.last_sent, conn.unread) == (3, 3)
    sent_total = metrics.registry.get_sample_value(
        "taskflow_websocket_frames_total", {"direction": "sent"}
    )
    assert sent_total == 4

    hub.publish("u", 4, "n4")  # the next change gets its own count, which includes it
    await settle(conn)
    assert writer.writes[1] == ["n4", count(4)]


async def test_a_read_mark_in_the_same_run_is_folded_into_the_one_count() -> None:
    writer = FakeWriter()
    hub, _, conn, _, _ = live(writer)
    hub.publish("u", 1, "n1")
    hub.publish("u", 2, "n2")
    # The counter row was read after a mark and before seq 2: 0 unread up to seq 1.
    hub.offer(conn, (COUNT, 0, 1))
    await settle(conn)
    assert writer.writes == [["n1", "n2", count(1)]]  # seq 2 is still unread


async def test_what_cannot_go_at_once_goes_through_the_sender_in_order() -> None:
    writer = FakeWriter(accept=False)  # the transport asked to pause
    hub, _, conn, sent, _ = live(writer)
    hub.publish("u", 1, "n1")
    hub.publish("u", 2, "n2")
    await settle(conn)
    assert writer.writes == []
    assert sent == ["n1", "n2", count(2)]

    writer.accept = True  # a traced frame: its span wraps the send, so the sender sends it
    hub.publish("u", 3, Note("n3", Context()))
    await settle(conn)
    assert writer.writes == [] and sent[3:] == ["n3", count(3)]

    hub.publish("u", 4, "n4")  # and the next run goes at once again
    await settle(conn)
    assert writer.writes == [["n4", count(4)]]
