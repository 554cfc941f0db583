"""Entry points `deploy/cli.py` calls: `serve`, `migrate`, `vapid_keys`."""

from __future__ import annotations

from collections.abc import Callable

from quart import Quart

from notify_ws.settings import Config, NotifySettings
from runtime.servers import ServerName, ServerOptions
from runtime.service import ServiceSpec, run_service

# Measured side by side with the hub bench (docs/adr/0009-asgi-server.md).
DEFAULT_SERVER: ServerName = "uvicorn"


def server_options(
    settings: NotifySettings, host: str, port: int, max_message_bytes: int = 64 * 1024
) -> ServerOptions:
    """Server limits of the hub: handshake backlog, message size (1009 above), pings."""
    ping = settings.ws_ping_interval
    return ServerOptions(
        host=host,
        port=port,
        graceful_timeout=5.0,
        ws_max_message_bytes=max_message_bytes,
        ws_ping_interval=ping.total_seconds() if ping is not None else None,
        ws_compression=settings.ws_compression,
        uvicorn_ws=settings.uvicorn_ws,
    )


def serve(host: str | None = None, port: int | None = None) -> None:
    """`taskflow serve notify`: worker + hub + REST in one process."""
    from notify_ws.app import SERVICE_NAME, create_app, service_of

    config = Config()

    async def close_sockets(app: Quart) -> None:
        # Close our sockets with a proper code (1001) while the server still runs.
        await service_of(app).ctx.hub.shutdown(config.notify.ws_close_timeout.total_seconds())

    def on_fatal(app: Quart, fatal: Callable[[], None]) -> None:
        service_of(app).on_fatal = fatal

    run_service(
        ServiceSpec(
            name=SERVICE_NAME,
            build_app=lambda: create_app(config),
            options=server_options(
                config.notify,
                host or config.notify.host,
                port or config.notify.port,
                config.security.ws_max_message_bytes,
            ),
            default_server=DEFAULT_SERVER,
            before_stop=close_sockets,
            on_fatal=on_fatal,
        )
    )


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
