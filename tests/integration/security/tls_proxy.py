"""A TLS-terminating TCP proxy on loopback: TLS from clients, plaintext to Tansu.

It stands in for a broker's own TLS listener because the Tansu build we ship cannot serve
TLS (see docs/deployment-guide.md, "Kafka TLS and SASL"). Clients still do everything a
real TLS broker makes them do: verify the chain against their CA bundle and the host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path

CHUNK = 64 * 1024


class TlsTerminator:
    """Listens with TLS on 127.0.0.1 (a free port) and pipes each connection to `upstream_port`.

    Runs its own event loop in a thread, so synchronous Kafka clients in the test do not
    block it. `connections` counts completed handshakes (asyncio drops failed ones quietly).
    """

    def __init__(self, cert: Path, key: Path, upstream_port: int) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self.upstream_port = upstream_port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tls-proxy", daemon=True
        )
        self.connections = 0
        self.port = 0

    def start(self) -> TlsTerminator:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = started.result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._context, ssl_handshake_timeout=5
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        # Open client connections end with their pipes; do not wait for idle clients.
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_out.close()
            return
        await asyncio.gather(
            _pipe(client_in, broker_out), _pipe(broker_in, client_out), return_exceptions=True
        )


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.close()
