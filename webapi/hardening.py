"""API hardening every service installs with one call: rate limits, WebSocket limits,
security headers, CORS and the JWKS prefetch (`TASKFLOW_*` settings, docs/security.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from limits import RateLimitItem
from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from quart import Quart, request, websocket
from quart.wrappers.base import BaseRequestWebsocket

from events.secrets import SecretFilesMixin
from webapi.auth import Principal, TokenVerifier, Unauthorized
from webapi.cors import check_origins, install_cors
from webapi.headers import install_secure_headers
from webapi.limits import MessageGuard, RateLimits, parse_limit
from webapi.text_guard import install_text_guard

EXTENSION = "taskflow.hardening"
# Probes and scrapes come from the platform, often all from one address.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
ONE_YEAR = 365 * 24 * 3600


class WebSecuritySettings(SecretFilesMixin, BaseSettings):
    """Limits and headers shared by the four HTTP services (`TASKFLOW_` prefix)."""

    model_config = SettingsConfigDict(env_prefix="TASKFLOW_", extra="ignore")

    env: Literal["local", "production"] = "local"
    # Requests per authenticated user and per client IP (both apply), in the limits
    # library's notation. Generous: a chatbot backend calling for many users from one
    # address must fit under the IP limit. Benchmarks raise them (see docs/security.md).
    rate_limit_enabled: bool = True
    rate_limit_per_user: str = "6000/minute"
    rate_limit_per_ip: str = "30000/minute"
    # Unset: counts in this process. A limits-library storage URI ("redis://host:6379",
    # needs the redis package) shares the counts between processes and replicas.
    rate_limit_storage_uri: str | None = None
    # Reverse proxies in front of the service: the client IP is then the address they
    # appended to X-Forwarded-For. 0 trusts no header (a client could spoof it).
    trusted_proxies: int = 0
    # WebSocket: handshakes per user and per IP, inbound message size and rate.
    ws_connect_limit_per_user: str = "60/minute"
    ws_connect_limit_per_ip: str = "600/minute"
    ws_max_message_bytes: int = 64 * 1024
    ws_message_rate: str = "20/second"
    # Browser origins allowed by CORS (services without their own setting).
    cors_origins: list[str] = []
    # Strict-Transport-Security max-age; unset: one year in production, none locally.
    hsts_max_age: int | None = None

    @field_validator(
        "rate_limit_per_user",
        "rate_limit_per_ip",
        "ws_connect_limit_per_user",
        "ws_connect_limit_per_ip",
        "ws_message_rate",
    )
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_limit(value)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _explicit_origins(cls, value: list[str]) -> list[str]:
        return check_origins(value)

    @property
    def hsts_seconds(self) -> int:
        if self.hsts_max_age is not None:
            return self.hsts_max_age
        return ONE_YEAR if self.env == "production" else 0


class Hardening:
    """The limits of one app; request hooks and the WebSocket message guard use it."""

    def __init__(self, settings: WebSecuritySettings, tokens: TokenVerifier) -> None:
        self.settings, self.tokens = settings, tokens
        self.limits = RateLimits(settings.rate_limit_storage_uri)
        self._per_user = parse_limit(settings.rate_limit_per_user)
        self._per_ip = parse_limit(settings.rate_limit_per_ip)
        self._ws_per_user = parse_limit(settings.ws_connect_limit_per_user)
        self._ws_per_ip = parse_limit(settings.ws_connect_limit_per_ip)
        self._ws_rate = parse_limit(settings.ws_message_rate)

    def client_ip(self, source: BaseRequestWebsocket) -> str:
        """The peer's address, or the one the trusted proxies saw (X-Forwarded-For)."""
        hops = self.settings.trusted_proxies
        if hops > 0:
            route = source.access_route
            if len(route) >= hops:
                return str(route[-hops])
        return source.remote_addr or "unknown"

    def message_guard(self) -> MessageGuard:
        """A guard for one WebSocket connection's inbound messages."""
        return MessageGuard(self.limits, self._ws_rate, self.settings.ws_max_message_bytes)

    async def limit_request(self) -> None:
        """before_request: the caller's IP, then (with a valid token) their user budget."""
        if request.path in EXEMPT_PATHS:
            return
        # Verifying here also fetches a new JWKS key off the event loop, so the
        # blueprints' synchronous check finds it (and the verification) cached.
        principal = await self.tokens.identify(request.headers.get("Authorization"))
        if self.settings.rate_limit_enabled:
            ip = self.client_ip(request)
            self._check("http", ip, principal, self._per_ip, self._per_user)

    async def limit_handshake(self) -> None:
        """before_websocket: handshakes per IP and user; over the limit the upgrade is
        refused with 429 (Retry-After), before any socket state exists."""
        if not self.settings.rate_limit_enabled:
            return
        principal = None
        token = websocket.args.get("token")
        if token:
            try:
                principal = await self.tokens.verify_async(token)
            except Unauthorized:  # the handler answers a bad token with 4401
                principal = None
        ip = self.client_ip(websocket)
        self._check("ws", ip, principal, self._ws_per_ip, self._ws_per_user)

    def check_http(self, ip: str, principal: Principal | None) -> None:
        """Charge one HTTP request to the IP's and the user's budgets (for ASGI apps mounted
        beside the Quart app, e.g. the task service's MCP endpoint); `TooManyRequests`."""
        if self.settings.rate_limit_enabled:
            self._check("http", ip, principal, self._per_ip, self._per_user)

    def _check(
        self,
        namespace: str,
        ip: str,
        principal: Principal | None,
        per_ip: RateLimitItem,
        per_user: RateLimitItem,
    ) -> None:
        checks = [("client IP", ip, per_ip)]
        if principal is not None:
            checks.append(("user", principal.user_id, per_user))
        self.limits.check(namespace, checks)


def install_hardening(
    app: Quart,
    settings: WebSecuritySettings,
    tokens: TokenVerifier,
    *,
    cors_origins: list[str] | None = None,
    page_csp: Mapping[str, str] | None = None,
) -> Hardening:
    """Install limits, the NUL guard, headers and CORS on `app`; `cors_origins`
    overrides the shared setting (the task API has its own), `page_csp` gives HTML pages
    their own policy."""
    hardening = Hardening(settings, tokens)
    app.extensions[EXTENSION] = hardening
    if settings.rate_limit_enabled or tokens.uses_jwks:
        app.before_request(hardening.limit_request)
    app.before_websocket(hardening.limit_handshake)
    install_text_guard(app)
    install_cors(app, settings.cors_origins if cors_origins is None else cors_origins)
    install_secure_headers(app, settings.hsts_seconds, page_csp)
    app.before_serving(tokens.prefetch)
    return hardening


def hardening_of(app: Quart) -> Hardening:
    hardening: Hardening = app.extensions[EXTENSION]
    return hardening
