"""WebSocket limits on the real server: a message over the size limit closes 1009 (in the
handler, and in Hypercorn above its own limit), too many messages close 1008, and too many
handshakes are refused with 429 and Retry-After before the upgrade."""

from __future__ import annotations

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from events.kafka import KafkaSettings
from tests.integration.notify.conftest import SmtpSink, make_settings, running
from tests.integration.notify.wsutil import next_frame, send


async def closed_with(ws: websockets.ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        await next_frame(ws, "never")
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_oversized_messages_close_1009(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_WS_MAX_MESSAGE_BYTES", "1024")
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        async with websockets.connect(svc.ws_url("sam")) as ws:
            await next_frame(ws, "unread_count")
            await send(ws, {"type": "ping"})
            await next_frame(ws, "pong")
            await ws.send('{"type":"ping","pad":"' + "x" * 1100 + '"}')
            assert await closed_with(ws) == (1009, "messages are limited to 1024 bytes")
        # Hypercorn stops buffering at its own limit (64 KiB here) and closes by itself.
        async with websockets.connect(svc.ws_url("sam")) as ws:
            await next_frame(ws, "unread_count")
            await ws.send("x" * 100_000)
            code, _ = await closed_with(ws)
            assert code == 1009


async def test_too_many_messages_close_1008(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_WS_MESSAGE_RATE", "5/minute")
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        async with websockets.connect(svc.ws_url("rita")) as ws:
            await next_frame(ws, "unread_count")
            for _ in range(5):
                await send(ws, {"type": "ping"})
                await next_frame(ws, "pong")
            await send(ws, {"type": "ping"})
            code, reason = await closed_with(ws)
            assert code == 1008 and "too many messages" in reason
        # The budget is the connection's: a new one may talk again.
        async with websockets.connect(svc.ws_url("rita")) as ws:
            await send(ws, {"type": "ping"})
            await next_frame(ws, "pong")


async def test_too_many_handshakes_are_refused_with_429(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_WS_CONNECT_LIMIT_PER_USER", "2/minute")
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        for _ in range(2):
            async with websockets.connect(svc.ws_url("hal")) as ws:
                await next_frame(ws, "unread_count")
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(svc.ws_url("hal"))
        response = refused.value.response
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["Content-Type"] == "application/problem+json"
        # Another user from the same address still connects (the IP limit is higher).
        async with websockets.connect(svc.ws_url("ivy")) as ws:
            await next_frame(ws, "unread_count")
