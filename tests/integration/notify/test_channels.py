"""Email, Web Push and webhook against real servers: retries, breaker, outcomes on Kafka."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import http_ece
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from events.codec import decode
from events.kafka import KafkaSettings
from events.payloads import NotificationDelivered, NotificationFailed
from notify_ws.channels.push import generate_vapid_keys
from notify_ws.channels.webhook import verify
from tests.integration.notify.conftest import (
    Kafka,
    SmtpSink,
    auth,
    eventually,
    make_settings,
    running,
    task_created,
)
from tests.integration.notify.receivers import receiver

WEBHOOK_SECRET = "webhook-secret-for-tests-0123456789abcdef"


def outcomes(kafka: Kafka, msgs: list[Any]) -> list[Any]:
    out = []
    for m in msgs:
        env = decode(m.value())
        if isinstance(env.data, NotificationDelivered | NotificationFailed):
            out.append(env.data)
    return out


async def set_prefs(svc: Any, user: str, **prefs: Any) -> None:
    body = {"channels": {"in_app": True, "email": False, "push": False, "webhook": False}}
    body.update(prefs)
    r = await svc.http.put("/api/v1/preferences", headers=auth(user), json=body)
    assert r.status_code == 200, r.text


async def test_smtp_down_retries_opens_breaker_then_recovers_and_delivers(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    smtp.stop()  # the port is known, nothing listens
    settings = make_settings(notify_db, smtp.port, breaker_reset="PT2S")
    async with running(settings, kafka_settings) as svc:
        await set_prefs(svc, "hana", channels={"in_app": True, "email": True, "push": False,
                                               "webhook": False},
                        email="hana@example.test")  # fmt: skip
        await kafka.produce(task_created("hana", "Pay rent"), "hana")

        async def breaker_open() -> bool:
            return svc.metric("taskflow_channel_breaker_state", channel="email") == 2  # open

        await eventually(breaker_open)
        # In-app did not wait for email.
        inbox = (await svc.http.get("/api/v1/notifications", headers=auth("hana"))).json()
        assert inbox["unread_count"] == 1
        assert smtp.messages == []
        smtp.start()

        async def mailed() -> bool:
            return len(smtp.messages) == 1

        await eventually(mailed, timeout=20)
        mail = smtp.messages[0]
        assert mail["To"] == "hana@example.test" and mail["Subject"] == "New task: Pay rent"
        assert svc.metric("taskflow_channel_breaker_state", channel="email") == 0
        msgs = await kafka.read_async(kafka_settings.topics.notifications, 2)
        (done,) = outcomes(kafka, msgs)
        assert isinstance(done, NotificationDelivered) and done.channel == "email"
        assert (
            svc.metric("taskflow_channel_deliveries_total", channel="email", outcome="delivered")
        ) == 1


async def test_webhook_500s_retry_then_notification_failed(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    settings = make_settings(notify_db, smtp.port, webhook_secret=WEBHOOK_SECRET,
                             breaker_threshold=10)  # fmt: skip
    async with receiver(lambda path: 500) as hook, running(settings, kafka_settings) as svc:
        await set_prefs(svc, "ivan", channels={"in_app": True, "email": False, "push": False,
                        "webhook": True}, webhook_url=hook.url("/hook"))  # fmt: skip
        await kafka.produce(task_created("ivan", "Call mom"), "ivan")
        msgs = await kafka.read_async(kafka_settings.topics.notifications, 2, timeout=20)
        (failed,) = outcomes(kafka, msgs)
        assert isinstance(failed, NotificationFailed)
        assert failed.channel == "webhook" and failed.attempts == 5
        assert len(hook.requests) == 5
        for req in hook.requests:
            assert verify(WEBHOOK_SECRET.encode(), req.headers["X-TaskFlow-Signature"], req.body)
            doc = orjson.loads(req.body)
            assert doc["notification"]["title"] == "New task: Call mom"
        assert not verify(b"wrong", hook.requests[0].headers["X-TaskFlow-Signature"],
                          hook.requests[0].body)  # fmt: skip


def subscription_keys() -> tuple[ec.EllipticCurvePrivateKey, str, bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    secret = os.urandom(16)
    b64 = base64.urlsafe_b64encode
    return key, b64(public).decode().rstrip("="), secret, b64(secret).decode().rstrip("=")


async def test_web_push_encrypts_for_the_subscription_and_drops_gone_ones(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    private, public = generate_vapid_keys()
    settings = make_settings(notify_db, smtp.port, vapid_private_key=private,
                             vapid_public_key=public)  # fmt: skip
    async with (
        receiver(lambda path: 410 if path.startswith("/gone") else 201) as push,
        running(settings, kafka_settings) as svc,
    ):
        key, p256dh, secret, auth_b64 = subscription_keys()
        live = {"endpoint": push.url(f"/live/{uuid.uuid4()}"),
                "keys": {"p256dh": p256dh, "auth": auth_b64}}  # fmt: skip
        gone = {"endpoint": push.url("/gone/1"), "keys": {"p256dh": p256dh, "auth": auth_b64}}
        for sub in (live, gone):
            r = await svc.http.post("/api/v1/push-subscriptions", headers=auth("jane"), json=sub)
            assert r.status_code == 201, r.text
        await set_prefs(svc, "jane", channels={"in_app": True, "email": False, "push": True,
                                               "webhook": False})  # fmt: skip
        await kafka.produce(task_created("jane", "Water plants"), "jane")

        async def both_tried() -> bool:
            return len(push.requests) >= 2

        await eventually(both_tried)
        (got,) = [r for r in push.requests if r.path.startswith("/live")]
        assert got.headers["Content-Encoding"] == "aes128gcm"
        assert got.headers["Authorization"].startswith("vapid t=")
        plain = http_ece.decrypt(got.body, private_key=key, auth_secret=secret,
                                 version="aes128gcm")  # fmt: skip
        doc = orjson.loads(plain)
        assert doc["notification"]["title"] == "New task: Water plants"

        async def gone_removed() -> bool:
            rows = await svc.http.get("/api/v1/notifications", headers=auth("jane"))
            assert rows.status_code == 200
            async with svc.app.extensions["notify_ws"].pool.acquire() as conn:
                n = await conn.fetchval("SELECT count(*) FROM push_subscriptions")
            return n == 1

        await eventually(gone_removed)
