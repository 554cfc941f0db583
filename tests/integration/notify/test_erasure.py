"""Erasure in the notification service (issue 16): `user.erased` deletes the user's inbox,
preferences, push subscriptions and deliveries, closes their sockets with 4403, refuses
them afterwards, drops their later events, and publishes one `user.erasure.applied`."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson
import pytest
import websockets

from events.codec import Envelope, encode
from events.kafka import KafkaSettings
from events.payloads import UserErased
from notify_ws.worker.erasures import applied_event_id
from tests.integration.notify.conftest import (
    T0,
    Kafka,
    SmtpSink,
    auth,
    eventually,
    make_settings,
    running,
    task_created,
)
from tests.integration.notify.wsutil import next_frame

P256 = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
SUB = {"endpoint": "https://push.example.test/alice", "keys": {"p256dh": P256,
       "auth": "tBHItJI5svbpez7KI4CCXg"}}  # fmt: skip
PREFS = {"channels": {"in_app": True, "email": True}, "email": "alice@example.test"}


def erased_event(user: str, erasure_id: uuid.UUID) -> Envelope[UserErased]:
    payload = UserErased(user_id=user, erasure_id=erasure_id, requested_at=T0, requested_by="self")
    return Envelope(data=payload, source="/tests/task-api", subject=user, user_id=user)


async def publish_erased(kafka: Kafka, envelope: Envelope[UserErased]) -> None:
    """As the task service's relay does: on taskflow.tasks, keyed by the user id."""
    await kafka.producer.produce(
        kafka.settings.topics.tasks, encode(envelope), key=envelope.data.user_id.encode(),
        headers=[("ce_type", b"user.erased")],
    )  # fmt: skip


async def counts(db: asyncpg.Connection, user: str) -> dict[str, int]:
    out = {}
    for table in ("notifications", "preferences", "push_subscriptions", "deliveries",
                  "user_counters"):  # fmt: skip
        out[table] = await db.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user)  # noqa: S608
    return out


def applied_of(msgs: list[Any], user: str) -> list[dict[str, Any]]:
    docs = [orjson.loads(m.value()) for m in msgs]
    return [d for d in docs if d["type"] == "user.erasure.applied" and d["data"]["user_id"] == user]


async def closed_with(ws: Any) -> int | None:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_erasure_deletes_closes_refuses_and_publishes_once(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka,
    db: asyncpg.Connection,
) -> None:  # fmt: skip
    notifications = kafka_settings.topics.notifications
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        http = svc.http
        assert (await http.put("/api/v1/preferences", headers=auth("alice"), json=PREFS)).is_success
        r = await http.post("/api/v1/push-subscriptions", headers=auth("alice"), json=SUB)
        assert r.status_code == 201
        async with websockets.connect(svc.ws_url("alice")) as alice:
            await next_frame(alice, "unread_count")
            await kafka.produce(task_created("alice", "Secret plan"), "alice")
            await kafka.produce(task_created("bob", "Bob's task"), "bob")
            await next_frame(alice, "notification")

            async def emailed() -> bool:
                return 1 == await db.fetchval(
                    "SELECT count(*) FROM deliveries WHERE user_id = 'alice'"
                    " AND status = 'delivered'"
                )  # fmt: skip

            await eventually(emailed)
            before = await counts(db, "alice")
            assert all(before.values()), before
            erasure = erased_event("alice", uuid.uuid4())
            await publish_erased(kafka, erasure)
            assert await closed_with(alice) == 4403

        async def gone() -> bool:
            return not any((await counts(db, "alice")).values())

        await eventually(gone, timeout=10)
        # Refused from now on: WebSocket 4403, REST 410 problem+json.
        async with websockets.connect(svc.ws_url("alice")) as again:
            assert await closed_with(again) == 4403
        for path in ("/api/v1/notifications", "/api/v1/preferences", "/api/v1/me/export"):
            r = await http.get(path, headers=auth("alice"))
            assert r.status_code == 410, path
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"].endswith("/user-erased")

        # A task event of alice arriving after the erasure (other key, other partition)
        # and the same user.erased replayed: nothing comes back, nothing is published again.
        await kafka.produce(task_created("alice", "Late event"), "alice")
        await publish_erased(kafka, erasure)
        await kafka.produce(task_created("bob", "Marker"), "bob")

        async def bob_has_two() -> bool:
            inbox = (await http.get("/api/v1/notifications", headers=auth("bob"))).json()
            return len(inbox["items"]) == 2

        await eventually(bob_has_two)
        # Events of other keys may come in any order: wait until all were processed.
        await eventually(consumed(svc, kafka_settings, task_created=4, user_erased=2))
        assert not any((await counts(db, "alice")).values())
        msgs = await kafka.read_async(
            notifications, 0, timeout=3, done=lambda m: len(applied_of(m, "alice")) > 1
        )
        applied = applied_of(msgs, "alice")
        assert len(applied) == 1, applied
        event = applied[0]
        assert event["id"] == applied_event_id(erasure.data.erasure_id)
        assert event["data"]["service"] == "notifications"
        assert event["data"]["outcome"] == "completed"
        assert event["data"]["erasure_id"] == str(erasure.data.erasure_id)
        published = await db.fetchval(
            "SELECT published_at FROM erased_users WHERE user_id = 'alice'"
        )
        assert published is not None
        # Bob is untouched.
        assert (await counts(db, "bob"))["notifications"] == 2
        r = await http.get("/api/v1/notifications", headers=auth("bob"))
        assert r.status_code == 200


def consumed(svc: Any, kafka: KafkaSettings, **want: int) -> Any:
    """A check: the worker has processed (committed) this many events of each type."""

    async def check() -> bool:
        return all(
            (
                svc.metric(
                    "taskflow_events_consumed_total",
                    topic=kafka.topics.tasks,
                    type=kind.replace("_", "."),
                )
                or 0
            )
            >= n  # fmt: skip
            for kind, n in want.items()
        )

    return check


async def test_reordered_task_event_before_erasure_in_one_batch_creates_nothing(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka,
    db: asyncpg.Connection,
) -> None:  # fmt: skip
    """user.erased first, then a task event of that user, then bob's: bob's arrives, alice
    gets nothing (checked in the worker's transaction, whichever batch they fall into)."""
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        await publish_erased(kafka, erased_event("carol", uuid.uuid4()))
        await kafka.produce(task_created("carol", "Too late"), "carol")
        await kafka.produce(task_created("dave", "Marker"), "dave")

        async def dave_notified() -> bool:
            inbox = (await svc.http.get("/api/v1/notifications", headers=auth("dave"))).json()
            return len(inbox["items"]) == 1

        await eventually(dave_notified)
        await eventually(consumed(svc, kafka_settings, task_created=2, user_erased=1))
        assert not any((await counts(db, "carol")).values())
        assert await db.fetchval("SELECT count(*) FROM erased_users WHERE user_id = 'carol'") == 1


async def test_export_returns_inbox_preferences_subscriptions_and_deliveries(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka,
    db: asyncpg.Connection,
) -> None:  # fmt: skip
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        http = svc.http
        assert (await http.put("/api/v1/preferences", headers=auth("erin"), json=PREFS)).is_success
        r = await http.post("/api/v1/push-subscriptions", headers=auth("erin"), json=SUB)
        assert r.status_code == 201
        await kafka.produce(task_created("erin", "Export me"), "erin")
        await kafka.produce(task_created("frank", "Not exported"), "frank")

        async def delivered() -> bool:
            return 1 == await db.fetchval(
                "SELECT count(*) FROM deliveries WHERE user_id = 'erin' AND status = 'delivered'"
            )  # fmt: skip

        await eventually(delivered)
        r = await http.get("/api/v1/me/export", headers=auth("erin"))
        assert r.status_code == 200
        doc = r.json()
        assert doc["service"] == "notifications" and doc["user_id"] == "erin"
        assert [n["title"] for n in doc["notifications"]] == ["New task: Export me"]
        assert doc["preferences"]["email"] == "alice@example.test"
        assert doc["preferences"]["channels"]["email"] is True and doc["preferences"]["stored"]
        assert [s["endpoint"] for s in doc["push_subscriptions"]] == [SUB["endpoint"]]
        assert "keys" not in doc["push_subscriptions"][0]  # key material stays
        assert [(d["channel"], d["status"]) for d in doc["deliveries"]] == [("email", "delivered")]
        assert doc["deliveries"][0]["notification_id"] == doc["notifications"][0]["id"]
        assert "frank" not in r.text and "Not exported" not in r.text
        assert (await http.get("/api/v1/me/export")).status_code == 401
