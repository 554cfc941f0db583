"""WebSocket protocol edges: bad tokens close 4401, bad frames get error frames and the
connection stays, a client that cannot keep up is closed with 1013."""

from __future__ import annotations

import asyncio
import socket

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from events.kafka import KafkaSettings
from events.payloads import TaskUpdated
from tests.integration.notify.conftest import (
    Kafka,
    SmtpSink,
    make_settings,
    running,
    task_created,
)
from tests.integration.notify.wsutil import next_frame, send
from webapi.auth import issue_token


@pytest.mark.parametrize(
    "tok", ["garbage", "", issue_token("another-secret-of-sufficient-length-xx", "alice")]
)
async def test_bad_token_closes_4401(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, tok: str
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        async with websockets.connect(svc.ws_url("x", tok=tok or "%20")) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_shutdown_closes_sockets_with_1001(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        async with websockets.connect(svc.ws_url("zoe")) as ws:
            await next_frame(ws, "unread_count")
            svc.stop.set()
            with pytest.raises(ConnectionClosed) as closed:
                await next_frame(ws, "never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_bad_frames_get_errors_and_the_connection_stays(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        async with websockets.connect(svc.ws_url("frank")) as ws:
            await next_frame(ws, "unread_count")
            for bad in ("not json", "[1,2]", '{"type":"dance"}', '{"type":"read","ids":"x"}',
                        '{"type":"read","ids":["not-a-uuid"]}', '{"type":"read"}'):  # fmt: skip
                await ws.send(bad)
                error = await next_frame(ws, "error")
                assert error["detail"]
            await send(ws, {"type": "ping"})
            assert (await next_frame(ws, "pong")) == {"type": "pong"}
            await kafka.produce(task_created("frank"), "frank")
            assert (await next_frame(ws, "notification"))["notification"]["seq"] == 1
        async with websockets.connect(svc.ws_url("frank") + "&since=x") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


def read_close_code(sock: socket.socket) -> tuple[int, int]:
    """Read raw WebSocket frames until the close frame: (frames before it, close code)."""
    buf, frames = b"", 0
    sock.settimeout(20)
    head, _, buf = _recv_until(sock, b"\r\n\r\n").partition(b"\r\n\r\n")
    assert b" 101 " in head.split(b"\r\n")[0]
    while True:
        while len(buf) < 2:
            buf += _recv(sock)
        opcode, size, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if size == 126:
            buf += b"" if len(buf) >= 4 else _recv(sock)
            size, at = int.from_bytes(buf[2:4], "big"), 4
        elif size == 127:
            while len(buf) < 10:
                buf += _recv(sock)
            size, at = int.from_bytes(buf[2:10], "big"), 10
        while len(buf) < at + size:
            buf += _recv(sock)
        payload, buf = buf[at : at + size], buf[at + size :]
        if opcode == 8:
            return frames, int.from_bytes(payload[:2], "big")
        frames += 1


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("closed without a close frame")
    return data


def _recv_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        data += _recv(sock)
    return data


async def test_slow_client_is_closed_with_1013(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    settings = make_settings(notify_db, smtp.port, ws_queue_size=64)
    async with running(settings, kafka_settings) as svc:
        # A raw client with a tiny receive buffer that does not read: the server's writes
        # stall once the kernel buffers are full.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", svc.port))
        path = svc.ws_url("gina").split(str(svc.port), 1)[1]
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        try:
            async with websockets.connect(svc.ws_url("gina")) as fast:
                await next_frame(fast, "unread_count")
                base = task_created("gina")
                seen = 0
                # ~10 KiB frames in bursts the fast client's queue holds: it keeps up.
                for burst in range(40):
                    for i in range(20):
                        changed = tuple(f"field_{burst}_{i}_{n:04d}" for n in range(450))
                        payload = TaskUpdated(**{**base.model_dump(), "version": 2 + seen + i},
                                              changed=changed)  # fmt: skip
                        await kafka.produce(payload, "gina")
                    for _ in range(20):
                        frame = await next_frame(fast, "notification", timeout=20)
                        seen += 1
                        assert frame["notification"]["seq"] == seen
                    if svc.metric(
                        "taskflow_websocket_dropped_connections_total", reason="slow_client"
                    ):
                        break
            frames, code = await asyncio.to_thread(read_close_code, sock)
            assert code == 1013, (frames, seen)
        finally:
            sock.close()
        assert (
            svc.metric("taskflow_websocket_dropped_connections_total", reason="slow_client") or 0
        ) >= 1
