"""Bearer JWT (HS256) auth: `sub` is the user, `roles` may grant "operator"."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import jwt
from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.web.problems import ProblemError

DEFAULT_SECRET = "taskflow-local-development-secret-change-me"  # noqa: S105 - refused outside local
OPERATOR = "operator"


class AuthSettings(BaseSettings):
    """`TASKFLOW_JWT_SECRET` and `TASKFLOW_ENV` (local | production)."""

    model_config = SettingsConfigDict(env_prefix="TASKFLOW_", extra="ignore")

    env: Literal["local", "production"] = "local"
    jwt_secret: SecretStr = SecretStr(DEFAULT_SECRET)

    @model_validator(mode="after")
    def _refuse_weak_secret_outside_local(self) -> AuthSettings:
        secret = self.jwt_secret.get_secret_value()
        if self.env != "local" and (secret == DEFAULT_SECRET or len(secret) < 32):
            raise ValueError("TASKFLOW_JWT_SECRET must be set (32+ characters) outside local mode")
        return self


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    roles: frozenset[str] = frozenset()

    @property
    def is_operator(self) -> bool:
        return OPERATOR in self.roles


class Unauthorized(ProblemError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


def issue_token(
    secret: str, user_id: str, roles: tuple[str, ...] = (), ttl: timedelta = timedelta(hours=1)
) -> str:
    """A signed HS256 token for `user_id`."""
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: str, token: str) -> Principal:
    """Check signature, expiry and claims; raise `Unauthorized` otherwise."""
    principal, expires_at = _verified(secret, token)
    # A cached verification still expires on time.
    if time.time() >= expires_at:
        raise Unauthorized("invalid token: Signature has expired")
    return principal


@lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[Principal, float]:
    """Full verification of one token, remembered: a client sends the same token for an
    hour, and the signature check was ~5% of a request's CPU. Failures are not cached."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    sub, roles = claims.get("sub"), claims.get("roles", [])
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("invalid token: 'sub' must be a non-empty string")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise Unauthorized("invalid token: 'roles' must be a list of strings")
    return Principal(user_id=sub, roles=frozenset(roles)), float(claims["exp"])


def bearer_principal(secret: str, authorization: str | None) -> Principal:
    """The principal of an `Authorization: Bearer <JWT>` header value."""
    if not authorization:
        raise Unauthorized("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return verify_token(secret, token.strip())


def local_secret(data_dir: Path) -> str:
    """The generated secret a local run keeps in its data dir (created on first use)."""
    path = data_dir / "jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
