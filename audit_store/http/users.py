"""Per-user endpoints of the audit service: erasure status and the user's own export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from quart import Blueprint, Response, current_app, request

from audit_store.erasure import SERVICES, erasure_status
from audit_store.exceptions import ErasureNotFound
from audit_store.search import AuditQuery, stream_entries
from audit_store.services import AuditServices
from webapi.auth import Principal, bearer_principal
from webapi.openapi import JSON_OBJECT, document_status

users = Blueprint("audit_users", __name__, url_prefix="/api/v1")


def _services() -> AuditServices:
    services: AuditServices = current_app.extensions["audit"]
    return services


def _principal() -> Principal:
    return bearer_principal(_services().tokens, request.headers.get("Authorization"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, content_type="application/json")


async def _status(user_id: str, unknown_is_404: bool) -> dict[str, Any]:
    async with _services().pool.acquire() as conn:
        status = await erasure_status(conn, user_id)
        if status is not None:
            return status
        if unknown_is_404 and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM audit_entries WHERE user_id = $1)", user_id
        ):
            raise ErasureNotFound(f"no user {user_id!r} is known to the audit store")
    return {
        "user_id": user_id,
        "erasure_id": None,
        "requested_at": None,
        "requested_by": None,
        "services": dict.fromkeys(SERVICES, "not_requested"),
        "done": False,
    }


@users.get("/me/erasure")
@document_status(
    200, "Where the caller's erasure stands, per service", "application/json", JSON_OBJECT
)
async def my_erasure() -> Response:
    return _json(await _status(_principal().user_id, unknown_is_404=False))


@users.get("/users/<user_id>/erasure")
@document_status(200, "Where a user's erasure stands, per service", "application/json", JSON_OBJECT)
@document_status(404, "Unknown user", "application/problem+json", JSON_OBJECT)
async def user_erasure(user_id: str) -> Response:
    # Operators ask about anyone, others about themselves only. A non-operator asking
    # about another user gets 404, as the task service's DELETE /api/v1/users/{id}
    # answers: 403 would say that the user exists.
    principal = _principal()
    if principal.user_id == user_id:
        return _json(await _status(user_id, unknown_is_404=False))
    if not principal.is_operator:
        raise ErasureNotFound(f"no user {user_id!r} is known to the audit store")
    return _json(await _status(user_id, unknown_is_404=True))


@users.get("/me/export")
@document_status(200, "The caller's own audit entries, decrypted", "application/json", JSON_OBJECT)
async def my_export() -> Response:
    principal = _principal()
    services = _services()
    key = await services.pool.fetchrow(
        "SELECT wrapped_key, kek_id FROM audit_user_keys WHERE user_id = $1"
        " AND wrapped_key IS NOT NULL",
        principal.user_id,
    )
    if key is not None:  # a wrong KEK is a 500 problem now, not a broken stream later
        services.keyring.unwrap(principal.user_id, bytes(key["wrapped_key"]), key["kek_id"])
    # Confined to the caller's entries even for an operator token: this is their own data.
    own = Principal(principal.user_id)
    query = AuditQuery.parse({"user_id": principal.user_id})
    entries = stream_entries(services.pool, query, own, services.keyring)
    response = Response(_document(principal.user_id, entries), content_type="application/json")
    response.timeout = None
    response.headers["Content-Disposition"] = 'attachment; filename="audit-export.json"'
    return response


async def _document(user_id: str, entries: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """`{"service": "audit", "user_id": ..., "entries": [...]}`, streamed oldest first."""
    yield b'{"service":"audit","user_id":' + orjson.dumps(user_id) + b',"entries":['
    first = True
    async for entry in entries:
        yield (b"" if first else b",") + orjson.dumps(entry)
        first = False
    yield b"]}"
