"""The /console blueprint: static files, and dev tokens only in local mode (no I/O: the
app is built but never served, so nothing connects)."""

from __future__ import annotations

from typing import Literal

import pytest
from quart import Quart

from notify_ws.app import create_app
from notify_ws.settings import Config
from webapi.auth import AuthSettings, verify_token

SECRET = "console-unit-test-secret-0123456789abcdef0123456789"


def app_for(env: Literal["local", "production"]) -> Quart:
    auth = AuthSettings(env=env, jwt_secret=SECRET)
    return create_app(Config(auth=auth))


@pytest.fixture(scope="module")
def local() -> Quart:
    return app_for("local")


async def test_the_page_and_its_script_are_served(local: Quart) -> None:
    client = local.test_client()
    page = await client.get("/console")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = await page.get_data(as_text=True)
    assert '<script src="/console/console.js">' in html
    script = await client.get("/console/console.js")
    assert script.status_code == 200
    assert script.mimetype is not None and "javascript" in script.mimetype
    assert "/ws?token=" in await script.get_data(as_text=True)


@pytest.mark.parametrize("name", ["settings.py", "..%2Fapp.py", "missing.js"])
async def test_only_the_console_files_are_served(local: Quart, name: str) -> None:
    response = await local.test_client().get(f"/console/{name}")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


async def test_local_mode_issues_a_token_signed_with_the_configured_secret(local: Quart) -> None:
    response = await local.test_client().post("/console/token", json={"user": "alice"})
    assert response.status_code == 201
    body = await response.get_json()
    assert body["user"] == "alice" and body["expires_in"] == 3600
    assert verify_token(SECRET, body["token"]).user_id == "alice"


@pytest.mark.parametrize("body", [{}, {"user": ""}, {"user": "a b"}, {"user": "x", "roles": []}])
async def test_a_bad_token_request_is_a_422(local: Quart, body: dict[str, object]) -> None:
    response = await local.test_client().post("/console/token", json=body)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"


async def test_outside_local_mode_there_is_no_token_endpoint() -> None:
    app = app_for("production")
    response = await app.test_client().post("/console/token", json={"user": "alice"})
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    # The page itself stays: a developer can paste a token from `taskflow token`.
    assert (await app.test_client().get("/console")).status_code == 200
