"""Schemathesis against the notification service's /openapi.json (real DB, broker, SMTP)."""

from __future__ import annotations

import pytest
from quart import Quart

from events.kafka import KafkaSettings
from notify_ws.app import create_app, service_of
from notify_ws.settings import Config
from tests.fuzz.api_fuzz import NO_RATE_LIMITS, SERVER_THREAD, assert_clean, bearer, fuzz_api
from tests.fuzz.served import served
from tests.integration.notify.conftest import SECRET, SmtpSink, make_settings, token
from webapi.auth import AuthSettings

pytestmark = [pytest.mark.integration, SERVER_THREAD]


async def _close_sockets(app: Quart) -> None:
    await service_of(app).ctx.hub.shutdown(2.0)


def test_every_operation_answers_by_its_schema(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings
) -> None:
    config = Config(
        notify=make_settings(notify_db, smtp.port),
        kafka=kafka_settings,
        auth=AuthSettings(jwt_secret=SECRET),
        security=NO_RATE_LIMITS,
    )
    with served(lambda: create_app(config), _close_sockets) as base:
        signed_in = fuzz_api(base, bearer(token("fuzz-user")), max_examples=25)
        anonymous = fuzz_api(base, None, max_examples=5)
    assert_clean(signed_in, anonymous)
