"""Schemathesis against the task service's /openapi.json, on real PostgreSQL and Tansu."""

from __future__ import annotations

import pytest

from events.kafka import KafkaSettings
from task_api.app import create_app
from task_api.settings import Config, TaskApiSettings
from tests.fuzz.api_fuzz import (
    NO_RATE_LIMITS,
    SERVER_THREAD,
    assert_clean,
    bearer,
    fuzz_api,
    run_state_machine,
)
from tests.fuzz.served import served
from tests.integration.task_api.conftest import SECRET
from webapi.auth import AuthSettings, issue_token

pytestmark = [pytest.mark.integration, SERVER_THREAD]


def fuzz_config(task_db_url: str, kafka_settings: KafkaSettings) -> Config:
    return Config(
        service=TaskApiSettings(database_url=task_db_url, db_pool_size=5),
        kafka=kafka_settings,
        auth=AuthSettings(jwt_secret=SECRET),
        security=NO_RATE_LIMITS,
    )


def test_every_operation_answers_by_its_schema(
    task_db_url: str, kafka_settings: KafkaSettings
) -> None:
    config = fuzz_config(task_db_url, kafka_settings)
    with served(lambda: create_app(config)) as base:
        signed_in = fuzz_api(base, bearer(issue_token(SECRET, "fuzz-user")), max_examples=15)
        anonymous = fuzz_api(base, None, max_examples=5)
        forged = fuzz_api(base, bearer(issue_token("another-secret-" * 3, "x")), max_examples=3)
    assert_clean(signed_in, anonymous, forged)


def test_call_chains_follow_the_links(task_db_url: str, kafka_settings: KafkaSettings) -> None:
    config = fuzz_config(task_db_url, kafka_settings)
    with served(lambda: create_app(config)) as base:
        links = run_state_machine(base, bearer(issue_token(SECRET, "chains")), max_examples=15)
    assert links > 0, "no links between operations: the run was not stateful"
