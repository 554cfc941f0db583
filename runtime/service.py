"""The skeleton every service process runs through:
settings → logging → tracing → app (metrics, probes) → server → signals → graceful shutdown.

`run_service(spec)` is the whole `serve()` of a service: it cannot start an app that was not
built by `runtime.web.service_app` (so it cannot run unobserved), and SIGTERM/SIGINT always
drain the same way whichever server `TASKFLOW_SERVER` picks.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from quart import Quart

from observability.logs import setup_logging
from observability.tracing import force_flush, setup_tracing
from runtime.servers import ServerName, ServerOptions, serve
from runtime.settings import RuntimeSettings
from runtime.web import observed_as

log = logging.getLogger(__name__)


class ServiceFailed(SystemExit):
    """A background part of the service died: exit non-zero so a supervisor restarts it."""


@dataclass
class ServiceSpec:
    """One service process: its name, how to build its app, and where it listens."""

    name: str
    build_app: Callable[[], Quart]
    options: ServerOptions
    default_server: ServerName = "hypercorn"
    # Runs after a stop signal while the server still serves: close WebSockets with 1001.
    before_stop: Callable[[Quart], Awaitable[None]] | None = None
    # Called with a callback the app invokes when a background part dies.
    on_fatal: Callable[[Quart, Callable[[], None]], None] | None = None
    signals: tuple[signal.Signals, ...] = field(default=(signal.SIGTERM, signal.SIGINT))


def run_service(spec: ServiceSpec) -> None:
    """Run `spec` until SIGTERM/SIGINT (or a fatal background failure), on uvloop."""
    setup_logging(spec.name)
    setup_tracing(spec.name)
    runtime = RuntimeSettings()
    server = runtime.server or spec.default_server
    app = spec.build_app()
    if observed_as(app) != spec.name:
        raise RuntimeError(f"app built for {observed_as(app)!r}, served as {spec.name!r}")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(_serve(spec, app, server))
    else:
        uvloop.run(_serve(spec, app, server))


async def _serve(spec: ServiceSpec, app: Quart, server: ServerName) -> None:
    stop = asyncio.Event()
    failed = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in spec.signals:
        loop.add_signal_handler(sig, stop.set)

    def fatal() -> None:
        failed.set()
        stop.set()

    if spec.on_fatal is not None:
        spec.on_fatal(app, fatal)
    server_stop = asyncio.Event()

    async def drain_then_stop() -> None:
        await stop.wait()
        if spec.before_stop is not None:
            await spec.before_stop(app)
        server_stop.set()

    drainer = asyncio.create_task(drain_then_stop(), name="drain-then-stop")
    log.info("serving %s on %s:%d (%s)", spec.name, spec.options.host, spec.options.port, server)
    try:
        await serve(server, app, spec.options, server_stop)
    finally:
        drainer.cancel()
        force_flush()
    if failed.is_set():
        raise ServiceFailed(f"a background part of {spec.name} died; see the log")
