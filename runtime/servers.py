"""The ASGI servers a service can run on, behind one call: `serve(name, app, options, stop)`.

Hypercorn, uvicorn and granian serve the same Quart app; `TASKFLOW_SERVER` picks one and
each service has a measured default (docs/adr/0009-asgi-server.md). The server never owns
the process's signals: the skeleton handles SIGTERM/SIGINT and sets `stop`, so every
server drains the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, cast

ServerName = Literal["hypercorn", "uvicorn", "granian"]
UvicornWs = Literal["websockets-sansio", "wsproto"]
SERVERS: tuple[ServerName, ...] = ("hypercorn", "uvicorn", "granian")

Scope = MutableMapping[str, Any]
AsgiApp = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


@dataclass(frozen=True)
class ServerOptions:
    """What a service asks of its server, whichever server it is."""

    host: str
    port: int
    graceful_timeout: float = 5.0
    # Reconnect storms (a hub restart) arrive as thousands of handshakes at once.
    backlog: int = 4096
    ws_max_message_bytes: int = 64 * 1024
    ws_ping_interval: float | None = None
    # permessage-deflate keeps ~260 KiB of zlib state per socket: far more than small JSON
    # frames save, so it is off unless asked for.
    ws_compression: bool = False
    # uvicorn's WebSocket protocol: "websockets-sansio" or "wsproto" (less memory per
    # socket in the hub bench: docs/adr/0009-asgi-server.md).
    uvicorn_ws: UvicornWs = "websockets-sansio"


async def serve(name: ServerName, app: Any, options: ServerOptions, stop: asyncio.Event) -> None:
    """Serve `app` until `stop` is set, then shut down gracefully (lifespan included)."""
    runners = {"hypercorn": _hypercorn, "uvicorn": _uvicorn, "granian": _granian}
    await runners[name](app, options, stop)


async def _hypercorn(app: Any, options: ServerOptions, stop: asyncio.Event) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    if not options.ws_compression:
        _decline_hypercorn_deflate()
    config = Config()
    config.bind = [f"{options.host}:{options.port}"]
    config.accesslog = None  # the app writes its own access log, inside the request's span
    config.graceful_timeout = options.graceful_timeout
    config.backlog = options.backlog
    config.websocket_max_message_size = options.ws_max_message_bytes
    if options.ws_ping_interval is not None:
        config.websocket_ping_interval = options.ws_ping_interval
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)


def _decline_hypercorn_deflate() -> None:
    """Hypercorn offers permessage-deflate unconditionally; swap in an extension that declines."""
    from hypercorn.protocol import ws_stream
    from wsproto.extensions import PerMessageDeflate

    class NoDeflate(PerMessageDeflate):
        def accept(self, offer: str) -> None:
            return None

    ws_stream.PerMessageDeflate = NoDeflate  # type: ignore[attr-defined]


async def _uvicorn(app: Any, options: ServerOptions, stop: asyncio.Event) -> None:
    import uvicorn

    # uvicorn's INFO lines ("WebSocket /ws?token=... [accepted]") carry the whole request
    # target, query string included: a WebSocket's token would land in the log. The app
    # writes its own access log (path only); uvicorn keeps its warnings and errors.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    class Server(uvicorn.Server):
        # uvicorn would install its own SIGINT/SIGTERM handlers and re-raise the signal
        # after shutdown; the skeleton owns the signals.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        lifespan="on",
        http="httptools",
        ws=options.uvicorn_ws,
        ws_max_size=options.ws_max_message_bytes,
        ws_ping_interval=options.ws_ping_interval,
        ws_per_message_deflate=options.ws_compression,
        backlog=options.backlog,
        timeout_graceful_shutdown=int(options.graceful_timeout) or None,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    server = Server(config)

    async def stop_when_asked() -> None:
        await stop.wait()
        server.should_exit = True

    stopper = asyncio.create_task(stop_when_asked())
    try:
        await server.serve()
    finally:
        stopper.cancel()
    if not server.started:
        raise RuntimeError(f"uvicorn could not start on {options.host}:{options.port}")


async def _granian(app: Any, options: ServerOptions, stop: asyncio.Event) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    server = Server(
        cast(Any, app),
        address=options.host,
        port=options.port,
        interface=Interfaces.ASGI,
        websockets=True,
        backlog=options.backlog,
        log_enabled=False,
    )
    server.workers_kill_timeout = int(options.graceful_timeout) or None

    async def stop_when_asked() -> None:
        await stop.wait()
        server.stop()  # type: ignore[no-untyped-call]

    stopper = asyncio.create_task(stop_when_asked())
    try:
        await server.serve()
    finally:
        stopper.cancel()
