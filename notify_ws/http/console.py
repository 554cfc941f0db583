"""The developer console: a static page at `/console` and, in local mode only, a token
endpoint so a developer can try the system from a browser without the CLI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, send_from_directory
from quart_schema import hide, validate_request

from notify_ws.context import notify_context
from webapi.auth import issue_token
from webapi.problems import NotFound

STATIC = Path(__file__).resolve().parent.parent / "console"
# Only these files are served: the folder is not a general file server.
FILES = frozenset({"index.html", "console.js", "console.css"})
TOKEN_TTL = timedelta(hours=1)
# The page loads only its own files; it calls the task API whose address the developer
# types in (any http(s) origin) and this service's WebSocket.
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data:; connect-src 'self' http: https: ws: wss:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

console = Blueprint("console", __name__)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\w.@-]+$")]


class TokenOut(BaseModel):
    token: str
    user: str
    expires_in: int


@console.get("/console")
@hide
async def page() -> Response:
    return await _file("index.html")


@console.get("/console/<name>")
@hide
async def asset(name: str) -> Response:
    if name not in FILES:
        raise NotFound(f"no console file {name!r}")
    return await _file(name)


@console.post("/console/token")
@hide
@validate_request(TokenRequest)
async def token(data: TokenRequest) -> tuple[dict[str, object], int]:
    ctx = notify_context()
    # Minting tokens for anyone is a development convenience; in production it must not
    # exist at all, hence 404 (not 403).
    if ctx.config.auth.env != "local":
        raise NotFound("the console token endpoint exists only when TASKFLOW_ENV=local")
    auth = ctx.config.auth
    signed = issue_token(
        ctx.jwt_secret, data.user, ttl=TOKEN_TTL, audience=auth.jwt_audience, issuer=auth.jwt_issuer
    )
    out = TokenOut(token=signed, user=data.user, expires_in=int(TOKEN_TTL.total_seconds()))
    return out.model_dump(), 201


async def _file(name: str) -> Response:
    response = await send_from_directory(STATIC, name)
    response.headers["Cache-Control"] = "no-store"
    return response
