"""The bare peer of the task API bench: a Quart JSON echo (`@app.post` returning a dict),
served by the same `runtime.servers` call and server as the task service, on uvloop.

    python -m tests.bench.echo_app --server uvicorn --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any, get_args

import uvloop
from quart import Quart, request

from runtime.servers import ServerName, ServerOptions, serve


def echo_app() -> Quart:
    app = Quart(__name__)

    @app.post("/api/v1/tasks")
    async def create() -> tuple[dict[str, Any], int]:
        body = await request.get_json()
        return {"id": "00000000-0000-0000-0000-000000000000", "task": body}, 201

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


async def _main(server: ServerName, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(server, echo_app(), ServerOptions("127.0.0.1", port), stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", choices=get_args(ServerName), default="hypercorn")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(_main(args.server, args.port))


if __name__ == "__main__":
    main()
