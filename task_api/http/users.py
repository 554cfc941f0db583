"""User routes (`/api/v1/me`, `/api/v1/users/{id}`): erasure and export (issue 16)."""

from __future__ import annotations

import orjson
from quart import Blueprint, Response, g, request
from quart_schema import document_response
from tortoise.transactions import in_transaction

from task_api import erasure
from task_api.context import task_context
from task_api.db import outbox
from task_api.db.erasures import ErasureRecord
from task_api.db.written import collecting
from task_api.exceptions import UserNotFound
from task_api.http.routes import database
from task_api.http.views import ErasureAccepted, TaskExport
from webapi.auth import Principal, bearer_principal

users = Blueprint("users", __name__, url_prefix="/api/v1")

MAX_USER_ID = 255  # the user id columns' width: a longer id names no user
OWN_STATUS = "/api/v1/me/erasure"


@users.before_request
async def authenticate() -> None:
    g.principal = bearer_principal(task_context().tokens, request.headers.get("Authorization"))


def principal() -> Principal:
    who: Principal = g.principal
    return who


@users.delete("/me")
@document_response(ErasureAccepted, 202)
async def erase_me() -> Response:
    """Erase the caller (right to erasure).

    Their tasks and idempotency records are deleted now and `user.erased` is published;
    the other services follow it. Asking again answers 202 with the same body. Afterwards
    every write of this user gets 410 `user-erased`.
    """
    user_id = principal().user_id
    record = await _erase(user_id, erasure.SELF, must_exist=False)
    return _accepted(record, OWN_STATUS)


@users.delete("/users/<string:user_id>")
@document_response(ErasureAccepted, 202)
async def erase_user(user_id: str) -> Response:
    """Erase a user (operators; anyone for themselves).

    As `DELETE /api/v1/me`. An operator gets 404 for a user this service never saw (no
    tasks, no idempotency records, no earlier erasure); anyone else gets 404 for any user
    but themselves (403 would reveal that the user exists).
    """
    who = principal()
    if who.user_id == user_id:
        return _accepted(await _erase(user_id, erasure.SELF, must_exist=False), OWN_STATUS)
    if not who.is_operator or len(user_id) > MAX_USER_ID:
        raise UserNotFound()
    record = await _erase(user_id, who.user_id, must_exist=True)
    return _accepted(record, f"/api/v1/users/{user_id}/erasure")


@users.get("/me/export")
@document_response(TaskExport)
async def export_me() -> Response:
    """Export the caller's data (portability).

    Every task of the caller, oldest first, in the task JSON of `/api/v1/tasks`, and the
    erasure if there was one. `taskflow user export` gathers this from every service.
    """
    data = await erasure.export_user(database(), principal().user_id, task_context().clock())
    return Response(orjson.dumps(data), content_type="application/json")


async def _erase(user_id: str, requested_by: str, *, must_exist: bool) -> ErasureRecord:
    ctx = task_context()
    with collecting() as written:
        async with in_transaction() as conn:
            record = await erasure.erase_user(
                conn, ctx.sink, user_id, requested_by, ctx.clock(), must_exist=must_exist
            )
            if ctx.notify_relays:
                await outbox.notify_relays(conn)
        ctx.on_commit(written)
    return record


def _accepted(record: ErasureRecord, status: str) -> Response:
    body = ErasureAccepted(
        erasure_id=record.erasure_id,
        user_id=record.user_id,
        requested_at=record.requested_at,
        status=status,
    )
    return Response(body.model_dump_json(), status=202, content_type="application/json")
