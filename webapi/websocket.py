"""A leaner ASGI WebSocket connection for Quart apps that hold many long-lived sockets.

Quart's own connection runs two tasks per socket (one reading the server into an unbounded
queue, one running the handler) and awaits both. This one runs the handler in the server's
task and reads the server on demand: `websocket.receive()` awaits the ASGI `receive`
directly, and a client that leaves makes it raise `ClientDisconnected`. Routing,
`before_websocket` hooks, the websocket context and error handling stay Quart's.
Install it with `app.asgi_websocket_class = InlineWebsocketConnection`.

`direct_writer(websocket.send)` gives such a socket's frames a synchronous way out on
uvicorn's wsproto protocol: several frames in one transport write, no task, no await.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, cast

from quart import Quart
from quart.asgi import ASGIWebsocketConnection
from quart.signals import websocket_received, websocket_sent
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol
from wsproto.connection import ConnectionState


class ClientDisconnected(Exception):
    """The client closed the socket (or the server lost it) while the handler waited."""


class InlineWebsocketConnection(ASGIWebsocketConnection):
    """One task and no queue per socket: the handler reads the server when it asks."""

    def __init__(self, app: Quart, scope: Any) -> None:
        # Not super().__init__: that allocates the receive queue this class does without.
        self.app, self.scope = app, scope
        self._accepted = self._closed = False
        self._receive: Any = None
        # Quart's websocket reads `self.queue.get`: here that is `get` below.
        self.queue = cast(Any, self)

    async def __call__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        websocket = self._create_websocket_from_scope(send)
        await self.handle_websocket(websocket, send)

    async def get(self) -> str | bytes:
        """The next message from the client; `ClientDisconnected` once it has gone."""
        while True:
            event = await self._receive()
            if event["type"] == "websocket.receive":
                message: str | bytes = event.get("bytes") or event["text"]
                if websocket_received.receivers:
                    await websocket_received.send_async(message)
                return message
            if event["type"] == "websocket.disconnect":
                self._closed = True
                raise ClientDisconnected(event.get("code"))

    async def send_data(self, send: Any, data: str | bytes) -> None:
        # The same events as Quart's, without a signal dispatch per frame when nobody listens.
        if isinstance(data, str):
            await send({"type": "websocket.send", "bytes": None, "text": data})
        else:
            await send({"type": "websocket.send", "bytes": data, "text": None})
        if websocket_sent.receivers:
            await websocket_sent.send_async(data)


class DirectWriter:
    """Text frames written at once to a socket that uvicorn serves with wsproto and no
    extension (permessage-deflate off): what its ASGI `send` does for one frame, for
    several in one `transport.write` (one syscall), without waiting. `write` answers False
    instead of waiting (the transport asked to pause) or failing (the socket is closing):
    the caller then uses the ASGI `send`."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WSProtocol) -> None:
        self._protocol = protocol

    def write(self, frames: Sequence[str]) -> bool:
        p = self._protocol
        if p.disconnected or p.close_sent or not p.writable.is_set():
            return False
        transport = p.transport
        if transport.is_closing() or p.conn.state is not ConnectionState.OPEN:
            return False
        parts: list[bytes] = []
        for frame in frames:
            # RFC 6455 5.2: FIN + text opcode, no mask from a server, then the length.
            payload = frame.encode()
            n = len(payload)
            if n < 126:
                parts.append(_SHORT[n])
            elif n < 65536:
                parts.append(b"\x81\x7e" + n.to_bytes(2, "big"))
            else:
                parts.append(b"\x81\x7f" + n.to_bytes(8, "big"))
            parts.append(payload)
        transport.write(b"".join(parts))
        return True


_SHORT = [bytes((0x81, n)) for n in range(126)]


def direct_writer(send: Any) -> DirectWriter | None:
    """A `DirectWriter` for Quart's `websocket.send` of an accepted socket served by
    `InlineWebsocketConnection` on uvicorn's wsproto protocol without permessage-deflate
    (and no `websocket_sent` receivers, which the ASGI path calls); None otherwise."""
    sender = getattr(getattr(send, "__self__", None), "_send", None)  # Quart's partial
    if not isinstance(sender, partial) or len(sender.args) != 1:
        return None
    if not isinstance(getattr(sender.func, "__self__", None), InlineWebsocketConnection):
        return None
    protocol = getattr(sender.args[0], "__self__", None)
    if not isinstance(protocol, WSProtocol) or not protocol.handshake_complete:
        return None
    if protocol.config.ws_per_message_deflate or websocket_sent.receivers:
        return None
    return DirectWriter(protocol)
