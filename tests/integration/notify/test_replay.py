"""Replay with `since` after a disconnect: exactly the missed notifications, in order, then
live ones with no gap and no duplicate; and two hub processes on one database."""

from __future__ import annotations

import websockets

from events.kafka import KafkaSettings
from tests.integration.notify.conftest import (
    Kafka,
    SmtpSink,
    auth,
    eventually,
    make_settings,
    running,
    task_created,
)
from tests.integration.notify.wsutil import next_frame, notifications, quiet, send


async def test_since_replays_the_50_missed_then_goes_live(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka, db: object
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        async with websockets.connect(svc.ws_url("carol")) as ws:
            await next_frame(ws, "unread_count")
            await kafka.produce(task_created("carol", "first"), "carol")
            (first,) = await notifications(ws, 1)
            assert first["seq"] == 1
        # Disconnected: 50 notifications arrive meanwhile.
        for i in range(50):
            await kafka.produce(task_created("carol", f"missed {i}"), "carol")

        async def stored() -> bool:
            r = await svc.http.get("/api/v1/notifications", headers=auth("carol"))
            return r.json()["unread_count"] == 51

        await eventually(stored)
        async with websockets.connect(svc.ws_url("carol", since=1)) as ws:
            replayed = await notifications(ws, 50)
            assert [n["seq"] for n in replayed] == list(range(2, 52))
            # Different tasks sit on different partitions: the seq order is the contract.
            assert sorted(n["title"] for n in replayed) == sorted(
                f"New task: missed {i}" for i in range(50)
            )
            assert (await next_frame(ws, "unread_count"))["count"] == 51
            await kafka.produce(task_created("carol", "live"), "carol")
            (live,) = await notifications(ws, 1)
            assert live["seq"] == 52 and live["title"] == "New task: live"
            assert await quiet(ws) == []  # nothing doubled


async def test_two_hub_processes_on_one_database(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    hub_only = make_settings(notify_db, smtp.port, run_worker=False, run_dispatcher=False)
    async with (
        running(make_settings(notify_db, smtp.port), kafka_settings) as one,
        running(hub_only, kafka_settings) as two,
        websockets.connect(one.ws_url("dave")) as a,
        websockets.connect(two.ws_url("dave")) as b,
        websockets.connect(two.ws_url("erin")) as other,
    ):
        for ws in (a, b, other):
            await next_frame(ws, "unread_count")
        for i in range(5):
            await kafka.produce(task_created("dave", f"t{i}"), "dave")
        got_a, got_b = await notifications(a, 5), await notifications(b, 5)
        assert [n["seq"] for n in got_a] == [n["seq"] for n in got_b] == [1, 2, 3, 4, 5]
        # A read through node one reaches node two's connection as a new count.
        await send(a, {"type": "read", "ids": [got_a[0]["id"]]})

        async def count_on_b() -> bool:
            frame = await next_frame(b, "unread_count")
            return frame["count"] == 4

        await eventually(count_on_b)
        assert await quiet(other) == []
