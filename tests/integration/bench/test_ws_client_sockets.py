"""The hub bench's lean WebSocket client against a socket: handshake, messages, ping and
close (a hand-written server on loopback; the bench itself runs it against the hub)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest

from tests.bench._ws_client import HandshakeFailed, accept_key, connect
from tests.unit.bench.test_ws_client import server_frame


def _unmask(frame: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one masked client frame with a payload under 126 bytes."""
    assert frame[1] & 0x80, "a client frame must be masked"
    mask, body = frame[2:6], frame[6 : 6 + (frame[1] & 0x7F)]
    return frame[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(body))


async def _fake_server(
    accept: Callable[[bytes], bytes], seen: list[tuple[int, bytes]]
) -> tuple[asyncio.Server, int]:
    """A one-connection server that upgrades, sends a welcome, two messages (one split
    across writes) and a ping, records the client's frames, and ends on the client's close."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept(key)
            + b"\r\n\r\n"
            + server_frame(0x1, b'{"type":"unread_count"}')
        )
        second = server_frame(0x1, b'{"notification":2}')
        writer.write(server_frame(0x1, b'{"notification":1}') + second[:3])
        await writer.drain()
        writer.write(second[3:] + server_frame(0x9, b"hi"))
        while True:
            first = await reader.readexactly(2)
            frame = first + await reader.readexactly(4 + (first[1] & 0x7F))
            seen.append(_unmask(frame))
            if seen[-1][0] == 0x8:
                writer.write(server_frame(0x8, seen[-1][1]))
                await writer.drain()
                writer.close()
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_the_client_opens_reads_answers_pings_and_closes() -> None:
    seen: list[tuple[int, bytes]] = []
    server, port = await _fake_server(accept_key, seen)
    got: list[bytes] = []
    async with server:
        client = await connect("127.0.0.1", port, "/ws?token=t", got.append, timeout=5)
        assert client.opened.result() == b'{"type":"unread_count"}'
        async with asyncio.timeout(5):
            while len(got) < 2 or not seen:
                await asyncio.sleep(0.01)
        client.close()
        async with asyncio.timeout(5):
            await client.closed
    assert got == [b'{"notification":1}', b'{"notification":2}']
    assert seen == [(0xA, b"hi"), (0x8, struct.pack("!H", 1000))]


async def test_a_wrong_accept_key_fails_the_connect() -> None:
    server, port = await _fake_server(lambda key: b"not-the-key", [])
    async with server:
        with pytest.raises(HandshakeFailed, match="Sec-WebSocket-Accept"):
            await connect("127.0.0.1", port, "/ws", lambda _: None, timeout=5)
