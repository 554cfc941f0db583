"""Real HTTP receivers (aiohttp.web) standing in for a webhook endpoint and a push service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from deploy.broker import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    status: Callable[[str], int] = lambda path: 201

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def receiver(status: Callable[[str], int] = lambda path: 201) -> AsyncIterator[Receiver]:
    rec = Receiver(free_port(), status=status)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        rec.requests.append(Received(request.path, dict(request.headers), body))
        return web.Response(status=rec.status(request.path))

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", rec.port)
    await site.start()
    try:
        yield rec
    finally:
        await runner.cleanup()
