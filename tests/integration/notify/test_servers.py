"""Server choice: the notification service runs on each server `TASKFLOW_SERVER` can pick
and serves its WebSocket there (frames, replay, close codes)."""

from __future__ import annotations

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from events.kafka import KafkaSettings
from notify_ws.cli import DEFAULT_SERVER, server_options
from notify_ws.settings import NotifySettings
from runtime.servers import SERVERS, ServerName, UvicornWs
from tests.integration.notify.conftest import (
    Kafka,
    SmtpSink,
    make_settings,
    running,
    task_created,
)
from tests.integration.notify.wsutil import next_frame, notifications, send


def test_the_default_is_uvicorn_with_wsproto_as_measured() -> None:
    # docs/adr/0009-asgi-server.md: the least memory per socket, frames/s no worse.
    assert DEFAULT_SERVER == "uvicorn"
    settings = NotifySettings()
    assert settings.uvicorn_ws == "wsproto"
    assert server_options(settings, "127.0.0.1", 8002).uvicorn_ws == "wsproto"
    other = NotifySettings(uvicorn_ws="websockets-sansio")
    assert server_options(other, "127.0.0.1", 8002).uvicorn_ws == "websockets-sansio"


@pytest.mark.parametrize(
    ("server", "uvicorn_ws"),
    [(name, "wsproto") for name in SERVERS] + [("uvicorn", "websockets-sansio")],
)
async def test_the_service_serves_its_websocket_on(
    server: ServerName,
    uvicorn_ws: UvicornWs,
    notify_db: str,
    smtp: SmtpSink,
    kafka_settings: KafkaSettings,
    kafka: Kafka,
) -> None:
    user = f"srv-{server}"
    settings = make_settings(notify_db, smtp.port, uvicorn_ws=uvicorn_ws)
    async with running(settings, kafka_settings, server=server) as svc:
        assert (await svc.http.get("/healthz")).status_code == 200
        async with websockets.connect(svc.ws_url(user)) as ws:
            assert (await next_frame(ws, "unread_count"))["count"] == 0
            await kafka.produce(task_created(user, "one"), user)
            (note,) = await notifications(ws, 1)
            assert note["seq"] == 1
            await send(ws, {"type": "ping"})
            assert await next_frame(ws, "pong") == {"type": "pong"}
        async with websockets.connect(svc.ws_url(user, since=0)) as ws:
            assert [n["seq"] for n in await notifications(ws, 1)] == [1]  # replay
        async with websockets.connect(svc.ws_url(user, tok="garbage")) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        async with websockets.connect(svc.ws_url(user)) as ws:
            await next_frame(ws, "unread_count")
            svc.stop.set()  # shutdown closes open sockets with 1001
            with pytest.raises(ConnectionClosed) as closed:
                await next_frame(ws, "never")
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
