"""Entry points `deploy/cli.py` calls: `serve`, `migrate`, `vapid_keys`."""

from __future__ import annotations

import asyncio
import signal

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.protocol import ws_stream
from wsproto.extensions import PerMessageDeflate

from notify_ws.settings import Config, NotifySettings


class _NoDeflate(PerMessageDeflate):
    """Declines permessage-deflate: its zlib state costs ~260 KiB per socket, far more than
    small JSON frames save. Hypercorn offers it unconditionally, so it is swapped here."""

    def accept(self, offer: str) -> None:
        return None


def hypercorn_config(
    settings: NotifySettings, host: str, port: int, max_message_bytes: int = 64 * 1024
) -> HypercornConfig:
    if not settings.ws_compression:
        ws_stream.PerMessageDeflate = _NoDeflate  # type: ignore[attr-defined]
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 5.0
    # Reconnect storms (a hub restart) arrive as thousands of handshakes at once.
    config.backlog = 4096
    # Hypercorn buffers a message up to this size, then closes with 1009 (16 MiB default).
    config.websocket_max_message_size = max_message_bytes
    if settings.ws_ping_interval is not None:
        config.websocket_ping_interval = settings.ws_ping_interval.total_seconds()
    return config


async def run(config: Config, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; WebSockets get 1001 before the server stops."""
    from notify_ws.app import create_app, service_of

    app = create_app(config)
    stop = asyncio.Event()
    failed = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def fatal() -> None:
        failed.set()
        stop.set()

    service_of(app).on_fatal = fatal

    async def shutdown_trigger() -> None:
        await stop.wait()
        # Close our sockets with a proper code while the server still runs.
        service = service_of(app)
        await service.ctx.hub.shutdown(config.notify.ws_close_timeout.total_seconds())

    await hypercorn_serve(
        app,
        hypercorn_config(config.notify, host, port, config.security.ws_max_message_bytes),
        shutdown_trigger=shutdown_trigger,
    )
    if failed.is_set():
        raise SystemExit("a background part of the notification service died; see the log")


def serve(host: str | None = None, port: int | None = None) -> None:
    """`taskflow serve notify`: worker + hub + REST in one process."""
    from notify_ws.app import SERVICE_NAME
    from observability.logs import setup_logging

    setup_logging(SERVICE_NAME)
    config = Config()
    main = run(config, host or config.notify.host, port or config.notify.port)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(main)
    else:
        uvloop.run(main)


async def migrate() -> None:
    """`taskflow migrate notify`."""
    from notify_ws.db.migrate import migrate as apply

    await apply(NotifySettings().database_url)


def vapid_keys() -> None:
    """`taskflow vapid-keys`: print a fresh VAPID key pair as settings lines."""
    from notify_ws.channels.push import generate_vapid_keys

    private, public = generate_vapid_keys()
    print(f"TASKFLOW_NOTIFY_VAPID_PRIVATE_KEY={private}")
    print(f"TASKFLOW_NOTIFY_VAPID_PUBLIC_KEY={public}")
