"""A leaner ASGI WebSocket connection for Quart apps that hold many long-lived sockets.

Quart's own connection runs two tasks per socket (one reading the server into an unbounded
queue, one running the handler) and awaits both. This one runs the handler in the server's
task and reads the server on demand: `websocket.receive()` awaits the ASGI `receive`
directly, and a client that leaves makes it raise `ClientDisconnected`. Routing,
`before_websocket` hooks, the websocket context and error handling stay Quart's.
Install it with `app.asgi_websocket_class = InlineWebsocketConnection`.
"""

from __future__ import annotations

from typing import Any, cast

from quart import Quart
from quart.asgi import ASGIWebsocketConnection
from quart.signals import websocket_received, websocket_sent


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
