"""RS256 with keys from a JWKS URL served by a real local HTTP server: fetched off the
event loop, cached, refreshed for a new key id (rotation) but never more often than the
floor, and a service accepts the first request signed with a key it has not fetched yet."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from quart import Blueprint, Quart, g, request

from webapi.auth import AuthSettings, TokenVerifier, Unauthorized, bearer_principal
from webapi.hardening import WebSecuritySettings, install_hardening
from webapi.jwks import JwksKeys
from webapi.problems import install_problem_handlers


class Jwks:
    """A JWKS endpoint whose keys a test changes; counts fetches; can hold a response."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        self.gate = threading.Event()
        self.gate.set()
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                jwks.fetches += 1
                jwks.gate.wait(10)
                body = json.dumps({"keys": [jwks.public(kid) for kid in jwks.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def public(self, kid: str) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}

    def add_key(self) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def token(self, kid: str, user: str = "alice") -> str:
        claims = {"sub": user, "exp": int(time.time()) + 600}
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.gate.set()
        server.server.shutdown()
        server.server.server_close()
        thread.join(5)


def verifier_for(jwks: Jwks, min_refresh_interval: float = 0.0) -> TokenVerifier:
    keys = JwksKeys(jwks.url, min_refresh_interval=min_refresh_interval, timeout=5)
    return TokenVerifier(None, algorithm="RS256", jwks=keys)


async def test_keys_are_fetched_once_and_cached(jwks: Jwks) -> None:
    kid = jwks.add_key()
    verifier = AuthSettings(jwt_algorithm="RS256", jwt_jwks_url=jwks.url).verifier()
    token = jwks.token(kid)
    with pytest.raises(Unauthorized, match="unknown signing key"):
        verifier.verify(token)  # the synchronous path never does I/O
    assert (await verifier.verify_async(token)).user_id == "alice"
    for user in ("bob", "carol", "dave"):
        assert (await verifier.verify_async(jwks.token(kid, user))).user_id == user
    assert jwks.fetches == 1


async def test_the_fetch_does_not_block_the_event_loop(jwks: Jwks) -> None:
    kid = jwks.add_key()
    verifier = verifier_for(jwks)
    jwks.gate.clear()  # the endpoint holds its answer
    pending = asyncio.create_task(verifier.verify_async(jwks.token(kid)))
    deadline = time.monotonic() + 10
    while jwks.fetches == 0:  # this loop runs while the fetch waits: not blocked
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert not pending.done()
    jwks.gate.set()
    assert (await asyncio.wait_for(pending, 10)).user_id == "alice"


async def test_a_new_key_id_is_fetched_and_made_up_ids_do_not_flood_the_provider(
    jwks: Jwks,
) -> None:
    first = jwks.add_key()
    verifier = verifier_for(jwks, min_refresh_interval=60)
    assert (await verifier.verify_async(jwks.token(first))).user_id == "alice"
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for _ in range(20):
        claims = {"sub": "mallory", "exp": int(time.time()) + 600}
        token = jwt.encode(claims, forged, algorithm="RS256", headers={"kid": uuid.uuid4().hex})
        with pytest.raises(Unauthorized):
            await verifier.verify_async(token)
    assert jwks.fetches == 1  # within the floor no fetch repeats

    rotating = verifier_for(jwks)
    assert (await rotating.verify_async(jwks.token(first))).user_id == "alice"
    second = jwks.add_key()  # the provider rotates
    assert (await rotating.verify_async(jwks.token(second, "bob"))).user_id == "bob"


async def test_an_unreachable_jwks_fails_requests_not_startup() -> None:
    verifier = AuthSettings(
        jwt_algorithm="RS256", jwt_jwks_url="http://127.0.0.1:9/jwks.json"
    ).verifier()
    await verifier.prefetch()
    kid_token = jwt.encode(
        {"sub": "a", "exp": int(time.time()) + 60},
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(Unauthorized):
        await verifier.verify_async(kid_token)


async def test_a_service_accepts_the_first_request_signed_with_a_new_key(jwks: Jwks) -> None:
    kid = jwks.add_key()
    tokens = AuthSettings(jwt_algorithm="RS256", jwt_jwks_url=jwks.url).verifier()
    app = Quart(__name__)
    install_problem_handlers(app)
    # Even with rate limits off, the shared hook fetches new keys before the blueprints'
    # synchronous check runs.
    install_hardening(app, WebSecuritySettings(rate_limit_enabled=False), tokens)
    api = Blueprint("api", __name__)

    @api.before_request
    async def authenticate() -> None:
        g.principal = bearer_principal(tokens, request.headers.get("Authorization"))

    @api.get("/me")
    async def me() -> dict[str, str]:
        return {"user": g.principal.user_id}

    app.register_blueprint(api)
    client = app.test_client()
    response = await client.get("/me", headers={"Authorization": f"Bearer {jwks.token(kid)}"})
    assert response.status_code == 200
    assert await response.get_json() == {"user": "alice"}
    hs256 = jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, "s" * 40, algorithm="HS256")
    refused = await client.get("/me", headers={"Authorization": f"Bearer {hs256}"})
    assert refused.status_code == 401
