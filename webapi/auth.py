"""Bearer JWT auth (HS256, or RS256 with a PEM key or a JWKS URL): `sub` is the user,
`roles` may grant "operator"; `aud`/`iss` are checked when configured."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.types import Options
from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.secrets import SecretFilesMixin
from webapi.jwks import JwksKeys
from webapi.problems import ProblemError

DEFAULT_SECRET = "taskflow-local-development-secret-change-me"  # noqa: S105 - refused outside local
OPERATOR = "operator"
MIN_SECRET_BYTES = 32


class AuthSettings(SecretFilesMixin, BaseSettings):
    """`TASKFLOW_JWT_SECRET` and `TASKFLOW_ENV` (local | production)."""

    model_config = SettingsConfigDict(env_prefix="TASKFLOW_", extra="ignore")

    env: Literal["local", "production"] = "local"
    jwt_secret: SecretStr = SecretStr(DEFAULT_SECRET)
    # The one algorithm accepted (a token signed otherwise is refused): HS256 with
    # jwt_secret, or RS256 with a PEM public key or the keys published at a JWKS URL.
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_jwks_max_age: timedelta = timedelta(minutes=5)
    # When set, tokens must carry exactly this audience / issuer.
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # Clock skew tolerated on `exp`/`nbf`/`iat` (tokens from another machine's clock).
    jwt_leeway: timedelta = timedelta(0)

    @model_validator(mode="after")
    def _refuse_weak_secret_outside_local(self) -> AuthSettings:
        if self.env == "local" or self.jwt_algorithm != "HS256":
            return self
        secret = self.jwt_secret.get_secret_value()
        if secret == DEFAULT_SECRET or len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"TASKFLOW_JWT_SECRET must be set to a random value of {MIN_SECRET_BYTES}+ "
                "bytes outside local mode (it is the default or too short); generate one "
                "with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return self

    @model_validator(mode="after")
    def _rs256_needs_one_key_source(self) -> AuthSettings:
        sources = [s for s in (self.jwt_public_key, self.jwt_jwks_url) if s]
        if self.jwt_algorithm == "HS256" and sources:
            raise ValueError(
                "TASKFLOW_JWT_PUBLIC_KEY/TASKFLOW_JWT_JWKS_URL need TASKFLOW_JWT_ALGORITHM=RS256"
            )
        if self.jwt_algorithm == "RS256" and len(sources) != 1:
            raise ValueError(
                "TASKFLOW_JWT_ALGORITHM=RS256 needs exactly one of TASKFLOW_JWT_PUBLIC_KEY "
                "(PEM) or TASKFLOW_JWT_JWKS_URL"
            )
        if self.jwt_public_key:
            rsa_public_key(self.jwt_public_key)  # a clear error now, not 401s later
        url = self.jwt_jwks_url or ""
        if url and not url.startswith("https://") and self.env != "local":
            raise ValueError("TASKFLOW_JWT_JWKS_URL must be https:// outside local mode")
        return self

    def verifier(self) -> TokenVerifier:
        """The token checker these settings describe (one per app: it caches)."""
        key: Any
        jwks = None
        if self.jwt_algorithm == "HS256":
            key = self.jwt_secret.get_secret_value()
        elif self.jwt_public_key:
            key = rsa_public_key(self.jwt_public_key)
        else:
            key = None
            jwks = JwksKeys(str(self.jwt_jwks_url), max_age=self.jwt_jwks_max_age.total_seconds())
        return TokenVerifier(
            key,
            algorithm=self.jwt_algorithm,
            jwks=jwks,
            audience=self.jwt_audience,
            issuer=self.jwt_issuer,
            leeway=self.jwt_leeway.total_seconds(),
        )


def rsa_public_key(pem: str) -> RSAPublicKey:
    """The RSA public key in PEM text; `ValueError` naming the setting otherwise."""
    try:
        key = load_pem_public_key(pem.strip().encode())
    except ValueError:
        raise ValueError("TASKFLOW_JWT_PUBLIC_KEY is not a PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("TASKFLOW_JWT_PUBLIC_KEY must be an RSA public key for RS256")
    return key


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
    secret: str,
    user_id: str,
    roles: tuple[str, ...] = (),
    ttl: timedelta = timedelta(hours=1),
    *,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """A signed HS256 token for `user_id` (with `aud`/`iss` when given)."""
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if roles:
        claims["roles"] = list(roles)
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


class TokenVerifier:
    """Checks a token's signature (with the one configured algorithm), expiry, `sub`,
    `roles` and, when configured, `aud` and `iss`.

    Verifications are remembered per token: a client sends the same token for an hour, and
    the signature check was ~5% of a request's CPU. Failures are not remembered.
    """

    def __init__(
        self,
        key: Any,
        *,
        algorithm: Literal["HS256", "RS256"] = "HS256",
        jwks: JwksKeys | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        if (key is None) == (jwks is None):
            raise ValueError("a TokenVerifier needs either a key or a JWKS")
        if algorithm == "HS256" and not isinstance(key, str):
            # PyJWT would take a PEM string as an HMAC secret too (algorithm confusion).
            raise ValueError("HS256 needs a secret string")
        self._key, self._jwks, self.algorithm = key, jwks, algorithm
        self._audience, self._issuer, self._leeway = audience, issuer, leeway
        required = ["sub", "exp"] + (["aud"] if audience else []) + (["iss"] if issuer else [])
        self._options: Options = {"require": required}
        self._verified = lru_cache(maxsize=4096)(self._decode)

    @classmethod
    def hs256(cls, secret: str) -> TokenVerifier:
        return cls(secret)

    def verify(self, token: str) -> Principal:
        """The token's principal; `Unauthorized` otherwise. No I/O: a JWKS key id not yet
        fetched fails here (`verify_async` fetches it)."""
        principal, expires_at = self._verified(token)
        # A remembered verification still expires on time.
        if time.time() >= expires_at + self._leeway:
            raise Unauthorized("invalid token: Signature has expired")
        return principal

    async def verify_async(self, token: str) -> Principal:
        """`verify`, after fetching the JWKS (off the event loop) if the key id is new."""
        if self._jwks is not None:
            kid = _key_id(token)
            if kid is not None and self._jwks.cached(kid) is None:
                await self._jwks.key(kid)
        return self.verify(token)

    async def identify(self, authorization: str | None) -> Principal | None:
        """The principal of a bearer header, or None when it is missing or invalid."""
        try:
            return await self.verify_async(bearer_token(authorization))
        except Unauthorized:
            return None

    @property
    def uses_jwks(self) -> bool:
        return self._jwks is not None

    async def prefetch(self) -> None:
        """Start fetching the JWKS at startup without waiting for it (a JWKS endpoint that
        is down must not stop the service; a failure is logged and requests retry)."""
        if self._jwks is not None:
            self._jwks.prefetch()

    def _signing_key(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        kid = _key_id(token)
        key = self._jwks.cached(kid) if kid is not None else None
        if key is None:
            raise Unauthorized("invalid token: unknown signing key (kid)")
        return key

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._signing_key(token),
                algorithms=[self.algorithm],
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        sub, roles = claims.get("sub"), claims.get("roles", [])
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("invalid token: 'sub' must be a non-empty string")
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise Unauthorized("invalid token: 'roles' must be a list of strings")
        return Principal(user_id=sub, roles=frozenset(roles)), float(claims["exp"])


def _key_id(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


@lru_cache(maxsize=16)
def _hs256_verifier(secret: str) -> TokenVerifier:
    return TokenVerifier.hs256(secret)


def _as_verifier(verifier: TokenVerifier | str) -> TokenVerifier:
    # A bare string is an HS256 secret (tests, local tools).
    return _hs256_verifier(verifier) if isinstance(verifier, str) else verifier


def verify_token(verifier: TokenVerifier | str, token: str) -> Principal:
    """Check signature, expiry and claims; raise `Unauthorized` otherwise."""
    return _as_verifier(verifier).verify(token)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <JWT>` header value."""
    if not authorization:
        raise Unauthorized("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


def bearer_principal(verifier: TokenVerifier | str, authorization: str | None) -> Principal:
    """The principal of an `Authorization: Bearer <JWT>` header value."""
    return _as_verifier(verifier).verify(bearer_token(authorization))


def local_secret(data_dir: Path) -> str:
    """The generated secret a local run keeps in its data dir (created on first use)."""
    path = data_dir / "jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
