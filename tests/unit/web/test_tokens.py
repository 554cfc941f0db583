"""Token checks: HS256 and RS256 (PEM), aud/iss when configured, no algorithm confusion,
and the refusal of weak or inconsistent auth settings outside local mode."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from webapi.auth import (
    DEFAULT_SECRET,
    AuthSettings,
    TokenVerifier,
    Unauthorized,
    bearer_principal,
    issue_token,
    verify_token,
)

SECRET = "unit-test-secret-0123456789abcdef0123456789"
PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": int(time.time()) + 600, **extra}


def rs256(**extra: Any) -> str:
    return jwt.encode(claims(**extra), PRIVATE, algorithm="RS256")


def settings(**values: Any) -> AuthSettings:
    return AuthSettings(**values)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_signed_with(key: bytes, body: dict[str, Any]) -> str:
    """An HS256 token made by hand (PyJWT itself refuses a PEM as an HMAC key)."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(body).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_hs256_tokens_verify_and_give_the_principal() -> None:
    verifier = settings(jwt_secret=SECRET).verifier()
    principal = verifier.verify(issue_token(SECRET, "bob", ("operator",)))
    assert principal.user_id == "bob" and principal.is_operator
    assert bearer_principal(verifier, f"Bearer {issue_token(SECRET, 'bob')}").user_id == "bob"
    # A bare secret string still works for tools and tests.
    assert verify_token(SECRET, issue_token(SECRET, "bob")).user_id == "bob"


def test_rs256_with_a_pem_key() -> None:
    verifier = settings(jwt_algorithm="RS256", jwt_public_key=PUBLIC_PEM).verifier()
    assert verifier.verify(rs256()).user_id == "alice"
    with pytest.raises(Unauthorized):
        verifier.verify(issue_token(SECRET, "alice"))  # HS256: not the configured algorithm


def test_an_hs256_token_signed_with_the_rsa_public_key_is_refused() -> None:
    forged = hs256_signed_with(PUBLIC_PEM.encode(), claims())
    verifier = settings(jwt_algorithm="RS256", jwt_public_key=PUBLIC_PEM).verifier()
    with pytest.raises(Unauthorized):
        verifier.verify(forged)
    # Nor can an HS256 verifier be built around a key object instead of a secret.
    with pytest.raises(ValueError, match="secret string"):
        TokenVerifier(PRIVATE.public_key(), algorithm="HS256")


def test_an_rs256_token_is_refused_by_an_hs256_service() -> None:
    with pytest.raises(Unauthorized):
        settings(jwt_secret=SECRET).verifier().verify(rs256())


def test_unsigned_and_other_algorithm_tokens_are_refused() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none")
    es_key = ec.generate_private_key(ec.SECP256R1())
    es256 = jwt.encode(claims(), es_key, algorithm="ES256")
    for verifier in (
        settings(jwt_secret=SECRET).verifier(),
        settings(jwt_algorithm="RS256", jwt_public_key=PUBLIC_PEM).verifier(),
    ):
        for token in (unsigned, es256):
            with pytest.raises(Unauthorized):
                verifier.verify(token)


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        ({"aud": "taskflow", "iss": "https://id.example"}, True),
        ({"aud": "other", "iss": "https://id.example"}, False),
        ({"aud": "taskflow", "iss": "https://evil.example"}, False),
        ({"iss": "https://id.example"}, False),
        ({"aud": "taskflow"}, False),
    ],
)
def test_audience_and_issuer_are_checked_when_configured(extra: dict[str, str], ok: bool) -> None:
    verifier = settings(
        jwt_algorithm="RS256",
        jwt_public_key=PUBLIC_PEM,
        jwt_audience="taskflow",
        jwt_issuer="https://id.example",
    ).verifier()
    token = rs256(**extra)
    if ok:
        assert verifier.verify(token).user_id == "alice"
    else:
        with pytest.raises(Unauthorized):
            verifier.verify(token)


def test_a_service_without_an_audience_refuses_tokens_meant_for_one() -> None:
    # RFC 7519 4.1.3: a recipient that is not named in `aud` must reject the token.
    with pytest.raises(Unauthorized, match="audience"):
        settings(jwt_secret=SECRET).verifier().verify(issue_token(SECRET, "a", audience="x"))
    configured = settings(jwt_secret=SECRET, jwt_audience="taskflow").verifier()
    assert configured.verify(issue_token(SECRET, "a", audience="taskflow")).user_id == "a"
    with pytest.raises(Unauthorized):
        configured.verify(issue_token(SECRET, "a"))


def test_a_remembered_verification_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = settings(jwt_secret=SECRET).verifier()
    token = issue_token(SECRET, "a", ttl=timedelta(seconds=30))
    assert verifier.verify(token).user_id == "a"  # now remembered
    later = time.time() + 60
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)


@pytest.mark.parametrize(
    "secret",
    [DEFAULT_SECRET, "x" * 31, "é" * 15],  # the default; 31 bytes; 30 bytes in 15 characters
)
def test_production_refuses_a_default_or_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="TASKFLOW_JWT_SECRET"):
        AuthSettings(env="production", jwt_secret=secret)


def test_production_accepts_a_long_secret_or_rs256_without_one() -> None:
    AuthSettings(env="production", jwt_secret="s" * 32)
    AuthSettings(env="production", jwt_algorithm="RS256", jwt_public_key=PUBLIC_PEM)
    AuthSettings(env="local")  # the default secret is fine locally


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jwt_algorithm": "RS256"}, "exactly one"),
        (
            {"jwt_algorithm": "RS256", "jwt_public_key": PUBLIC_PEM, "jwt_jwks_url": "https://x"},
            "exactly one",
        ),
        ({"jwt_public_key": PUBLIC_PEM}, "RS256"),
        ({"jwt_algorithm": "RS256", "jwt_public_key": "not a key"}, "not a PEM"),
        (
            {"env": "production", "jwt_algorithm": "RS256", "jwt_jwks_url": "http://id/jwks"},
            "https",
        ),
    ],
)
def test_inconsistent_settings_fail_at_startup(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AuthSettings(**values)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("TASKFLOW_JWT_PUBLIC_KEY", PUBLIC_PEM)
    monkeypatch.setenv("TASKFLOW_JWT_AUDIENCE", "taskflow")
    verifier = AuthSettings().verifier()
    assert verifier.verify(rs256(aud="taskflow")).user_id == "alice"
