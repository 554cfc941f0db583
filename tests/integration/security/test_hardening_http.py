"""API hardening over HTTP on a Quart app built from the shared pieces: per-user and
per-IP limits (429 problem+json with Retry-After), exempt probes, security headers on
every kind of response, CORS for configured origins only."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from quart import Blueprint, Quart, g, request
from quart.typing import TestClientProtocol as Client

from webapi.auth import AuthSettings, bearer_principal, issue_token
from webapi.hardening import WebSecuritySettings, install_hardening
from webapi.probes import probes_blueprint
from webapi.problems import install_problem_handlers

SECRET = "hardening-test-secret-0123456789abcdef0123"
PAGE_CSP = "default-src 'self'"


def make_app(**security: Any) -> Quart:
    """What every service does: problem handlers, one hardening call, probes, a protected
    blueprint."""
    app = Quart(__name__)
    install_problem_handlers(app)
    tokens = AuthSettings(jwt_secret=SECRET).verifier()
    install_hardening(app, WebSecuritySettings(**security), tokens, page_csp={"/page": PAGE_CSP})
    app.register_blueprint(probes_blueprint({}, CollectorRegistry()))
    api = Blueprint("api", __name__, url_prefix="/api/v1")

    @api.before_request
    async def authenticate() -> None:
        g.principal = bearer_principal(tokens, request.headers.get("Authorization"))

    @api.get("/me")
    async def me() -> dict[str, str]:
        return {"user": g.principal.user_id}

    @app.get("/page")
    async def page() -> str:
        return "<!doctype html><title>page</title>"

    app.register_blueprint(api)
    return app


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, user)}"}


async def assert_rate_limited(response: Any, scope: str) -> None:
    assert response.status_code == 429
    assert response.content_type == "application/problem+json"
    body = await response.get_json()
    assert body["status"] == 429 and body["type"].endswith("/rate-limited")
    assert scope in body["detail"] and body["errors"] == []
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_each_user_has_a_budget(client_of: Any) -> None:
    client = client_of(rate_limit_per_user="3/minute")
    for _ in range(3):
        assert (await client.get("/api/v1/me", headers=bearer("alice"))).status_code == 200
    await assert_rate_limited(await client.get("/api/v1/me", headers=bearer("alice")), "user")
    # Another user on the same address is not affected.
    assert (await client.get("/api/v1/me", headers=bearer("bob"))).status_code == 200


async def test_each_client_ip_has_a_budget_even_without_a_valid_token(client_of: Any) -> None:
    client = client_of(rate_limit_per_ip="4/minute")
    responses = [
        await client.get("/api/v1/me", headers=headers)
        for headers in (bearer("a"), bearer("b"), {}, {"Authorization": "Bearer forged"})
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 401]
    await assert_rate_limited(await client.get("/api/v1/me", headers=bearer("c")), "client IP")


async def test_forwarded_addresses_count_only_behind_trusted_proxies(client_of: Any) -> None:
    spoofing = client_of(rate_limit_per_ip="1/minute")
    first = await spoofing.get("/api/v1/me", headers={"X-Forwarded-For": "1.1.1.1"})
    assert first.status_code == 401
    second = await spoofing.get("/api/v1/me", headers={"X-Forwarded-For": "2.2.2.2"})
    await assert_rate_limited(second, "client IP")  # the header is ignored: same client

    proxied = client_of(rate_limit_per_ip="1/minute", trusted_proxies=1)
    for address in ("1.1.1.1", "2.2.2.2"):
        response = await proxied.get("/api/v1/me", headers={"X-Forwarded-For": address})
        assert response.status_code == 401
    again = await proxied.get("/api/v1/me", headers={"X-Forwarded-For": "9.9.9.9, 1.1.1.1"})
    await assert_rate_limited(again, "client IP")


async def test_probes_are_never_limited(client_of: Any) -> None:
    client = client_of(rate_limit_per_ip="1/minute")
    for _ in range(5):
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200


async def test_limits_can_be_switched_off(client_of: Any) -> None:
    client = client_of(rate_limit_enabled=False, rate_limit_per_user="1/minute")
    for _ in range(5):
        assert (await client.get("/api/v1/me", headers=bearer("a"))).status_code == 200


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/v1/me", bearer("alice"), 200),
        ("/api/v1/me", {}, 401),
        ("/nowhere", {}, 404),
        ("/healthz", {}, 200),
    ],
)
async def test_every_response_carries_the_security_headers(
    client_of: Any, path: str, headers: dict[str, str], status: int
) -> None:
    response = await client_of().get(path, headers=headers)
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert (
        response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert "Strict-Transport-Security" not in response.headers


async def test_pages_get_their_own_policy_and_production_gets_hsts(client_of: Any) -> None:
    response = await client_of(env="production").get("/page")
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


async def test_cors_answers_configured_origins_only(client_of: Any) -> None:
    client = client_of(cors_origins=["https://app.example"])
    allowed = await client.get(
        "/api/v1/me", headers={**bearer("a"), "Origin": "https://app.example"}
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    assert "retry-after" in allowed.headers["Access-Control-Expose-Headers"].lower()
    refused = await client.get(
        "/api/v1/me", headers={**bearer("a"), "Origin": "https://evil.example"}
    )
    assert refused.status_code == 200
    assert not [h for h in refused.headers if h[0].lower().startswith("access-control-")]
    preflight = await client.options(
        "/api/v1/me",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"


async def test_no_cors_headers_at_all_without_origins(client_of: Any) -> None:
    response = await client_of().get("/healthz", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.fixture
def client_of() -> Any:
    def build(**security: Any) -> Client:
        return make_app(**security).test_client()

    return build
