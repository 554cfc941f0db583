"""Schemathesis against the audit service's /openapi.json on a real PostgreSQL."""

from __future__ import annotations

import pytest

from audit_store.app import create_app
from audit_store.settings import AuditSettings
from tests.fuzz.api_fuzz import NO_RATE_LIMITS, SERVER_THREAD, assert_clean, bearer, fuzz_api
from tests.fuzz.served import served
from tests.unit.audit.factories import T0
from webapi.auth import AuthSettings, issue_token

pytestmark = [pytest.mark.integration, SERVER_THREAD]

SECRET = "audit-fuzz-secret-" * 3


def test_every_operation_answers_by_its_schema(audit_db: str) -> None:
    settings = AuditSettings(database_url=audit_db, retention_days={"task.": 30})
    auth = AuthSettings(jwt_secret=SECRET)
    with served(
        lambda: create_app(
            settings, auth, None, lambda: T0, background=False, security=NO_RATE_LIMITS
        )
    ) as base:
        operator = fuzz_api(base, bearer(issue_token(SECRET, "ops", ("operator",))), 25)
        user = fuzz_api(base, bearer(issue_token(SECRET, "alice")), max_examples=5)
        anonymous = fuzz_api(base, None, max_examples=5)
    assert_clean(operator, user, anonymous)
