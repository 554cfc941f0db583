"""A lean WebSocket client for the hub benchmark: many sockets, frames read in place.

The hub bench holds 19,000 sockets in two client processes on the same two cores as the hub.
With the `websockets` library each frame passes through its parser, a queue and a reader
task's wake-up; in the 2026-12-07 runs the clients, not the hub, set the delivered rate (the
hub was busy ~30 % of the burst). This client is an `asyncio.Protocol` that parses RFC 6455
frames as bytes arrive and hands each message to one callback, with no task per socket.

It does what the bench needs and no more: the opening handshake (with the accept key
checked), text/binary messages (fragmented ones reassembled), permessage-deflate when the
server accepts the offer (the offer is made, as browsers do), ping → pong, and the closing
handshake. Frames it sends are masked, as a client's must be.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import zlib
from collections.abc import Callable
from typing import cast

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
_OFFER = b"permessage-deflate; client_max_window_bits"
_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.2: appended before inflating a message

OnMessage = Callable[[bytes], None]


class HandshakeFailed(Exception):
    """The server did not switch protocols as RFC 6455 requires."""


def accept_key(key: bytes) -> bytes:
    """The `Sec-WebSocket-Accept` value a server must answer `key` with."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324 - the RFC's hash


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One final, masked frame (client to server)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class FrameReader:
    """Server-to-client frames out of a byte stream: `feed` returns the complete messages'
    payloads (opcode, data) and control frames; it keeps a partial frame for the next call."""

    def __init__(self, inflate: bool = False) -> None:
        self._buffer = bytearray()
        self._parts: list[bytes] = []
        self._opcode = 0
        self._compressed = False
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if inflate else None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buffer
        buf += data
        out: list[tuple[int, bytes]] = []
        at = 0
        end = len(buf)
        while end - at >= 2:
            first, second = buf[at], buf[at + 1]
            if second & 0x80:
                raise ValueError("a server frame must not be masked")
            length = second & 0x7F
            head = 2
            if length == 126:
                if end - at < 4:
                    break
                (length,) = struct.unpack_from("!H", buf, at + 2)
                head = 4
            elif length == 127:
                if end - at < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, at + 2)
                head = 10
            if end - at < head + length:
                break
            payload = bytes(buf[at + head : at + head + length])
            at += head + length
            opcode = first & 0x0F
            if opcode >= 0x8:  # control frames are never fragmented nor compressed
                out.append((opcode, payload))
                continue
            if opcode:  # the first frame of a message
                self._opcode, self._compressed, self._parts = opcode, bool(first & 0x40), []
            self._parts.append(payload)
            if first & 0x80:  # FIN
                message = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
                if self._compressed:
                    if self._inflater is None:
                        raise ValueError("a compressed frame without permessage-deflate")
                    message = self._inflater.decompress(message + _TAIL)
                out.append((self._opcode, message))
                self._parts = []
        del buf[:at]
        return out


class ClientProtocol(asyncio.Protocol):
    """One client socket: handshake, then every data message goes to `on_message`.

    `opened` resolves with the first message (the hub's unread count) and `closed` when the
    connection ends.
    """

    def __init__(self, host: str, port: int, path: str, on_message: OnMessage) -> None:
        self._request_line = (host, port, path)
        self._on_message = on_message
        self._key = base64.b64encode(os.urandom(16))
        self._head = bytearray()
        self._reader: FrameReader | None = None
        self._transport: asyncio.Transport | None = None
        self._closing = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport has the methods but not the class: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        host, port, path = self._request_line
        self._transport.write(
            b"GET " + path.encode() + b" HTTP/1.1\r\n"
            b"Host: " + f"{host}:{port}".encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + self._key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: " + _OFFER + b"\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        if self._reader is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            try:
                self._reader = FrameReader(inflate=self._accepted(head))
            except HandshakeFailed as error:
                self._fail(error)
                return
        for opcode, payload in self._reader.feed(data):
            if opcode in (0x1, 0x2):
                if not self.opened.done():
                    self.opened.set_result(payload)
                else:
                    self._on_message(payload)
            elif opcode == 0x9:
                self._send(client_frame(0xA, payload))
            elif opcode == 0x8:
                if not self._closing:  # the server began: echo its close
                    self._send(client_frame(0x8, payload[:2]))
                self._close()

    def _accepted(self, head: bytes) -> bool:
        """Check the 101 answer; returns whether permessage-deflate was agreed."""
        status, *lines = head.split(b"\r\n")
        if status.split(b" ", 2)[1:2] != [b"101"]:
            raise HandshakeFailed(status.decode("latin-1"))
        fields = {}
        for line in lines:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if fields.get(b"sec-websocket-accept") != accept_key(self._key):
            raise HandshakeFailed("wrong Sec-WebSocket-Accept")
        return fields.get(b"sec-websocket-extensions", b"").startswith(b"permessage-deflate")

    def close(self) -> None:
        """Start the closing handshake (1000, normal); `closed` resolves when it ends."""
        if not self._closing:
            self._closing = True
            self._send(client_frame(0x8, struct.pack("!H", 1000)))

    def abort(self) -> None:
        """Drop the connection without the closing handshake."""
        if self._transport is not None:
            self._transport.abort()

    def _send(self, frame: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame)

    def _fail(self, error: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the first message"))
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(
    host: str, port: int, path: str, on_message: OnMessage, timeout: float = 60
) -> ClientProtocol:
    """Open one socket and wait for its first message (kept in `opened`)."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: ClientProtocol(host, port, path, on_message), host, port
    )
    try:
        await asyncio.wait_for(asyncio.shield(protocol.opened), timeout)
    except BaseException:
        protocol.abort()
        raise
    return protocol
