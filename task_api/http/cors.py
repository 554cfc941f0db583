"""CORS for browser clients of the task API (the notification service's /console)."""

from __future__ import annotations

from quart import Quart, Response, request
from quart_cors import cors

# What a browser client (the notification service's /console) may send and read.
CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "If-Match", "Idempotency-Key")
CORS_ALLOW_METHODS = ("GET", "POST", "PATCH", "DELETE", "OPTIONS")
CORS_EXPOSE_HEADERS = ("ETag", "Location")


def install_cors(app: Quart, origins: list[str]) -> None:
    """CORS headers for allowed origins only (others get none, so the browser refuses),
    and preflights of known routes answered `204` without authentication."""
    cors(
        app,
        allow_origin=origins,
        allow_headers=CORS_ALLOW_HEADERS,
        allow_methods=CORS_ALLOW_METHODS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=600,
    )

    @app.before_request
    async def answer_preflight() -> Response | None:
        # App-level hooks run before the blueprint's bearer check, which a preflight (sent
        # without credentials by design) would fail; quart-cors then adds its headers.
        if request.method != "OPTIONS" or request.url_rule is None:
            return None
        response = await app.make_default_options_response()
        response.status_code = 204
        return response
