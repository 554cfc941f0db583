"""Event -> inbox -> WebSocket frame, isolation between users, and REST over the inbox."""

from __future__ import annotations

import orjson
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
from tests.integration.notify.wsutil import next_frame


async def test_event_reaches_inbox_and_websocket_of_its_user_only(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        async with (
            websockets.connect(svc.ws_url("alice")) as alice,
            websockets.connect(svc.ws_url("bob")) as bob,
        ):
            assert (await next_frame(alice, "unread_count"))["count"] == 0
            assert (await next_frame(bob, "unread_count"))["count"] == 0
            # The client offered permessage-deflate; the hub declines it (memory per socket).
            assert "Sec-WebSocket-Extensions" not in alice.response.headers
            event_id = await kafka.produce(task_created("alice", "Buy milk"), "alice")

            frame = await next_frame(alice, "notification")
            note = frame["notification"]
            assert note["seq"] == 1 and note["kind"] == "task.created"
            assert note["title"] == "New task: Buy milk" and note["event_id"] == event_id
            assert note["read"] is False
            assert (await next_frame(alice, "unread_count"))["count"] == 1

            inbox = (await svc.http.get("/api/v1/notifications", headers=auth("alice"))).json()
            assert [i["id"] for i in inbox["items"]] == [note["id"]]
            assert inbox["unread_count"] == 1

            # Bob sees nothing: no frame, an empty inbox, and 404 for alice's id.
            await bob.send(orjson.dumps({"type": "ping"}).decode())
            assert orjson.loads(await bob.recv()) == {"type": "pong"}
            bob_inbox = (await svc.http.get("/api/v1/notifications", headers=auth("bob"))).json()
            assert bob_inbox == {"items": [], "next_cursor": None, "unread_count": 0}
            r = await svc.http.post(f"/api/v1/notifications/{note['id']}/read", headers=auth("bob"))
            assert r.status_code == 404
            assert r.headers["content-type"] == "application/problem+json"
            # Bob's read frame for alice's id changes nothing.
            await bob.send(orjson.dumps({"type": "read", "ids": [note["id"]]}).decode())

            r = await svc.http.post(
                f"/api/v1/notifications/{note['id']}/read", headers=auth("alice")
            )
            assert r.status_code == 200 and r.json()["unread_count"] == 0
            assert (await next_frame(alice, "unread_count"))["count"] == 0

            # The WebSocket read frame works too, and answers with a count.
            await kafka.produce(task_created("alice", "Walk dog"), "alice")
            second = (await next_frame(alice, "notification"))["notification"]
            assert second["seq"] == 2
            assert (await next_frame(alice, "unread_count"))["count"] == 1
            await alice.send(orjson.dumps({"type": "read", "ids": [second["id"]]}).decode())
            assert (await next_frame(alice, "unread_count"))["count"] == 0

            await bob.send(orjson.dumps({"type": "ping"}).decode())
            assert orjson.loads(await bob.recv()) == {"type": "pong"}  # still nothing else

        async def delivered() -> bool:
            created = svc.metric(
                "taskflow_events_produced_total",
                topic=kafka_settings.topics.notifications,
                type="notification.created",
            )
            # Two notification frames and at least two unread counts went out.
            sent = svc.metric("taskflow_websocket_frames_total", direction="sent")
            return (created or 0) >= 2 and (sent or 0) >= 4

        await eventually(delivered)
