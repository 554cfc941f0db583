"""The fast path: a notification the worker of this process commits reaches this process's
sockets without the Kafka round trip, exactly once even though the Kafka copy follows; a
socket on another hub instance still gets it through Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import websockets

from events.kafka import KafkaSettings
from tests.integration.notify.conftest import (
    Kafka,
    Running,
    SmtpSink,
    eventually,
    make_settings,
    running,
    task_created,
)
from tests.integration.notify.wsutil import next_frame, notifications, send

FAST_PATH = "taskflow_websocket_fast_path_total"
FROM_KAFKA = "taskflow_websocket_forward_seconds_count"


async def frames_until_pong(ws: Any) -> list[dict[str, Any]]:
    """Every frame before the answer to a ping: one socket's frames leave in queue order,
    so anything queued before the ping (a doubled notification) shows up here."""
    await send(ws, {"type": "ping"})
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while (frame := orjson.loads(await ws.recv()))["type"] != "pong":
            seen.append(frame)
    return seen


def metric(svc: Running, name: str) -> float:
    return svc.metric(name) or 0.0


async def test_a_local_user_gets_the_frame_once_from_the_fast_path(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        async with websockets.connect(svc.ws_url("fiona")) as ws:
            await next_frame(ws, "unread_count")
            await kafka.produce(task_created("fiona", "first"), "fiona")
            (note,) = await notifications(ws, 1)
            assert note["seq"] == 1 and note["title"] == "New task: first"

            # Both copies reached the hub: the worker's hand-over and the one through Kafka.
            async def both_arrived() -> bool:
                return metric(svc, FAST_PATH) == 1 and metric(svc, FROM_KAFKA) >= 1

            await eventually(both_arrived)
            later = await frames_until_pong(ws)
            assert [f for f in later if f["type"] == "notification"] == []  # not twice

            await kafka.produce(task_created("fiona", "second"), "fiona")
            (second,) = await notifications(ws, 1)
            assert second["seq"] == 2  # nothing skipped either


async def test_a_user_on_another_instance_gets_it_through_kafka(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    hub_only = make_settings(notify_db, smtp.port, run_worker=False, run_dispatcher=False)
    async with (
        running(make_settings(notify_db, smtp.port), kafka_settings) as with_worker,
        running(hub_only, kafka_settings) as other,
        websockets.connect(with_worker.ws_url("gus")) as local,
        websockets.connect(other.ws_url("gus")) as remote,
    ):
        for ws in (local, remote):
            await next_frame(ws, "unread_count")
        for i in range(3):
            await kafka.produce(task_created("gus", f"t{i}"), "gus")
        got_local, got_remote = await notifications(local, 3), await notifications(remote, 3)
        assert [n["seq"] for n in got_local] == [n["seq"] for n in got_remote] == [1, 2, 3]
        assert metric(with_worker, FAST_PATH) == 3
        assert metric(other, FAST_PATH) == 0  # no worker there: every frame came via Kafka
        assert metric(other, FROM_KAFKA) >= 3
        for ws in (local, remote):
            later = await frames_until_pong(ws)
            assert [f for f in later if f["type"] == "notification"] == []
