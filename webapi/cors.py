"""CORS for browser clients (the notification service's /console): configured origins
only, never a wildcard, no credentials (tokens travel in the Authorization header)."""

from __future__ import annotations

from quart import Quart, Response, request
from quart_cors import cors

# What a browser client may send and read.
CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "If-Match", "Idempotency-Key")
CORS_ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CORS_EXPOSE_HEADERS = ("ETag", "Location", "Retry-After")


def check_origins(origins: list[str]) -> list[str]:
    """Each origin is `scheme://host[:port]`; `*` is refused (name the origins)."""
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin == "*" or not sep or scheme not in ("http", "https") or not rest:
            raise ValueError(f"CORS origin {origin!r} must be scheme://host[:port], not '*'")
        if "/" in rest or "*" in rest:
            raise ValueError(f"CORS origin {origin!r} must have no path or wildcard")
    return origins


def install_cors(app: Quart, origins: list[str]) -> None:
    """CORS headers for allowed origins only (others get none, so the browser refuses),
    and preflights of known routes answered `204` without authentication."""
    if not origins:
        return
    cors(
        app,
        allow_origin=check_origins(origins),
        allow_credentials=False,
        allow_headers=CORS_ALLOW_HEADERS,
        allow_methods=CORS_ALLOW_METHODS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=600,
    )

    @app.before_request
    async def answer_preflight() -> Response | None:
        # App-level hooks run before a blueprint's bearer check, which a preflight (sent
        # without credentials by design) would fail; quart-cors then adds its headers.
        if request.method != "OPTIONS" or request.url_rule is None:
            return None
        response = await app.make_default_options_response()
        response.status_code = 204
        return response
