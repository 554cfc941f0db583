"""A real app on a real Hypercorn on 127.0.0.1, in a thread with its own event loop.

Schemathesis calls the API with blocking HTTP; the server must not share the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from quart import Quart

from deploy.broker import free_port

AppFactory = Callable[[], Quart]


@contextlib.contextmanager
def served(
    make_app: AppFactory,
    on_stop: Callable[[Quart], Awaitable[None]] | None = None,
    ready_path: str = "/healthz",
    timeout: float = 30.0,
) -> Iterator[str]:
    """Serve `make_app()` (built inside the server thread) until the block ends; yields the URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started: list[asyncio.AbstractEventLoop] = []
    stop: list[asyncio.Event] = []
    failure: list[BaseException] = []

    async def main() -> None:
        app = make_app()
        stop.append(asyncio.Event())
        started.append(asyncio.get_running_loop())
        config = HypercornConfig()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        config.graceful_timeout = 5.0

        async def trigger() -> None:
            await stop[0].wait()
            if on_stop is not None:
                await on_stop(app)

        await serve(app, config, shutdown_trigger=trigger)  # type: ignore[arg-type]

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"served-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while True:
        if failure:
            raise RuntimeError("the app failed to start") from failure[0]
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base + ready_path, timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline:
            raise AssertionError(f"{base}{ready_path} not up within {timeout}s")
        time.sleep(0.05)  # poll interval of a deadline loop
    try:
        yield base
    finally:
        started[0].call_soon_threadsafe(stop[0].set)
        thread.join(30)
        assert not thread.is_alive(), "server thread did not stop"
        if failure:
            raise RuntimeError("the app failed while serving") from failure[0]
