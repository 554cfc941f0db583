"""Schemathesis against the reminder service's /openapi.json (real DB and broker)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from quart import Quart

from events.kafka import KafkaSettings
from reminders.app import create_app
from reminders.domain.clock import FakeClock
from reminders.settings import ReminderSettings
from tests.fuzz.api_fuzz import NO_RATE_LIMITS, SERVER_THREAD, assert_clean, bearer, fuzz_api
from tests.fuzz.served import served
from webapi.auth import AuthSettings, issue_token

pytestmark = [pytest.mark.integration, SERVER_THREAD]

SECRET = "reminder-fuzz-secret-" * 3
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_every_operation_answers_by_its_schema(
    reminders_db: str, kafka_settings: KafkaSettings
) -> None:
    def make() -> Quart:
        return create_app(
            ReminderSettings(database_url=reminders_db),
            auth=AuthSettings(jwt_secret=SECRET),
            kafka=kafka_settings,
            clock=FakeClock(NOW),
            security=NO_RATE_LIMITS,
        )

    with served(make) as base:
        signed_in = fuzz_api(base, bearer(issue_token(SECRET, "alice")), max_examples=25)
        anonymous = fuzz_api(base, None, max_examples=5)
    assert_clean(signed_in, anonymous)
