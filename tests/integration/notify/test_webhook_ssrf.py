"""Webhook SSRF guard on the real service in production mode: PUT refuses internal targets
with a 422, delivery re-checks what the name resolves to (injected resolver), redirects
are not followed and big answers are cut off. Real sockets only ever go to 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from ipaddress import IPv4Network
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from deploy.broker import free_port
from events.codec import decode
from events.kafka import KafkaSettings
from events.payloads import NotificationFailed
from notify_ws.channels.base import Outgoing
from notify_ws.channels.webhook import Webhook, policy_from
from notify_ws.db import preferences as pf
from notify_ws.db.notifications import Notification
from notify_ws.exceptions import ChannelError
from notify_ws.preferences import Preferences
from notify_ws.settings import NotifySettings
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
from tests.integration.notify.receivers import receiver

WEBHOOK_SECRET = "webhook-secret-for-ssrf-tests-0123456789ab"


def production(notify_db: str, smtp: SmtpSink, **overrides: Any) -> NotifySettings:
    return make_settings(notify_db, smtp.port, env="production", webhook_secret=WEBHOOK_SECRET,
                         **overrides)  # fmt: skip


def message(url: str) -> Outgoing:
    note = Notification(uuid.uuid4(), "u", 1, "task.created", "t", "b", None, "e1", T0)
    prefs = Preferences.model_validate({"channels": {"webhook": True}, "webhook_url": url})
    return Outgoing("u", [note], prefs)


class FakeResolver:
    """Every name resolves to the addresses given: no DNS query leaves the machine."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return self.addresses


async def test_put_refuses_internal_targets_with_a_422_naming_the_field(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings
) -> None:
    settings = production(notify_db, smtp, webhook_allowed_networks=["10.20.0.0/16"])
    async with running(settings, kafka_settings) as svc:
        for url in (
            "http://127.0.0.1:8001/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/",
            "http://[::1]:8003/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::5]/",
            "http://localhost:8002/",
        ):
            body = {"channels": {"webhook": True}, "webhook_url": url}
            r = await svc.http.put("/api/v1/preferences", headers=auth("sam"), json=body)
            assert r.status_code == 422, (url, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            problem = r.json()
            assert problem["type"] == "https://taskflow.dev/problems/validation"
            assert [e["field"] for e in problem["errors"]] == ["webhook_url"], problem
        stored = (await svc.http.get("/api/v1/preferences", headers=auth("sam"))).json()
        assert stored["webhook_url"] is None
        # A public address and an allow-listed network are fine (saving sends nothing).
        for url in ("https://93.184.216.34/hook", "http://10.20.0.7:9000/hook"):
            body = {"channels": {"webhook": True}, "webhook_url": url}
            r = await svc.http.put("/api/v1/preferences", headers=auth("sam"), json=body)
            assert r.status_code == 200, (url, r.text)


async def test_local_mode_still_accepts_loopback_receivers(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        body = {"channels": {"webhook": True}, "webhook_url": "http://127.0.0.1:8001/x"}
        r = await svc.http.put("/api/v1/preferences", headers=auth("lou"), json=body)
        assert r.status_code == 200, r.text


async def test_a_name_that_resolves_to_loopback_at_delivery_fails_permanently(
    notify_db: str,
    db: asyncpg.Connection,
    smtp: SmtpSink,
    kafka_settings: KafkaSettings,
    kafka: Kafka,
) -> None:
    settings = production(notify_db, smtp)
    rebinding = FakeResolver("127.0.0.1")  # it resolved elsewhere when it was saved

    def channels(pool: Any) -> list[Webhook]:
        return [Webhook(settings, time.time, policy_from(settings, True, rebinding))]

    async with receiver() as hook, running(settings, kafka_settings, channels=channels):
        url = f"http://hooks.example.test:{hook.port}/hook"
        prefs = Preferences.model_validate({"channels": {"webhook": True}, "webhook_url": url})
        await pf.put(db, "rita", prefs, T0)  # saved earlier, when the name looked public
        await kafka.produce(task_created("rita", "Renew passport"), "rita")

        def failed(msgs: list[Any]) -> bool:
            return any(isinstance(decode(m.value()).data, NotificationFailed) for m in msgs)

        msgs = await kafka.read_async(kafka_settings.topics.notifications, 0, done=failed,
                                      timeout=20)  # fmt: skip
        (outcome,) = [e.data for e in map(decode, (m.value() for m in msgs))
                      if isinstance(e.data, NotificationFailed)]  # fmt: skip
        assert outcome.channel == "webhook" and outcome.attempts == 1  # permanent: no retry
        assert "127.0.0.1 is loopback" in outcome.error
        assert rebinding.asked == ["hooks.example.test"]
        assert hook.requests == []  # the receiver really listens there: nothing arrived


@pytest.fixture
async def loopback_channel() -> AsyncIterator[Webhook]:
    """Production rules with 127.0.0.0/8 allow-listed, a name that resolves to 127.0.0.1:
    the pinned path against real sockets."""
    settings = NotifySettings(env="production", webhook_secret=WEBHOOK_SECRET,
                              webhook_allowed_networks=[IPv4Network("127.0.0.0/8")],
                              webhook_max_response_bytes=64 * 1024,
                              channel_timeout=timedelta(seconds=5))  # fmt: skip
    targets = policy_from(settings, True, FakeResolver("127.0.0.1"))
    hook = Webhook(settings, time.time, targets)
    await hook.start()
    yield hook
    await hook.close()


async def test_pinned_delivery_keeps_the_host_name_and_does_not_follow_redirects(
    loopback_channel: Webhook,
) -> None:
    async with receiver() as target, receiver(lambda path: 201) as plain:
        redirect_port = free_port()
        moved = target.url("/stolen")

        async def redirect(request: web.Request) -> web.Response:
            return web.Response(status=302, headers={"Location": moved})

        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", redirect)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", redirect_port).start()
        try:
            url = f"http://hooks.example.test:{plain.port}/in"
            assert await loopback_channel.deliver(message(url)) == "delivered"
            (got,) = plain.requests
            assert got.headers["Host"] == f"hooks.example.test:{plain.port}"

            with pytest.raises(ChannelError) as refused:
                await loopback_channel.deliver(message(f"http://127.0.0.1:{redirect_port}/in"))
            assert refused.value.permanent and "302" in str(refused.value)
            assert target.requests == []
        finally:
            await runner.cleanup()


async def test_an_endless_answer_is_cut_off_after_the_size_limit(
    loopback_channel: Webhook,
) -> None:
    sent = 0
    ended = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        await request.read()
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        try:
            while True:  # until the client hangs up
                await response.write(b"x" * 16384)
                sent += 16384
        except (ConnectionError, RuntimeError):
            pass
        finally:
            ended.set()
        return response

    port = free_port()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", endless)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        # Read to the end, this answer would run into the 5 s deadline ("timed out").
        outcome = await loopback_channel.deliver(message(f"http://hooks.example.test:{port}/"))
        assert outcome == "delivered"

        async def hung_up() -> bool:
            return ended.is_set()

        await eventually(hung_up, timeout=10)
        assert sent >= 64 * 1024
    finally:
        await runner.cleanup()
