"""`GET /api/v1/reminders`: the caller's upcoming reminders, keyset-paged;
`GET /api/v1/me/export`: everything the read model holds of the caller. An erased
user gets 410 on both."""

from __future__ import annotations

import uuid
from datetime import datetime

from quart import Blueprint, current_app, g, request
from quart_schema import validate_querystring, validate_response

from reminders.db import store
from reminders.exceptions import InvalidQuery, UserGone
from reminders.http.schemas import ReminderItem, ReminderPage, ReminderQuery
from webapi.auth import Principal, bearer_principal
from webapi.openapi import JSON_OBJECT, document_status
from webapi.paging import decode_cursor, encode_cursor

api = Blueprint("reminders", __name__, url_prefix="/api/v1")


@api.before_request
async def _authenticate() -> None:
    """Every route needs a valid token; checked before query validation (401 before 422)."""
    tokens = current_app.extensions["reminders"].tokens
    g.principal = bearer_principal(tokens, request.headers.get("Authorization"))
    async with current_app.extensions["reminders"].pool.acquire() as conn:
        if await store.is_erased(conn, g.principal.user_id):
            raise UserGone()


def _after(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    remind_at, task_id = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(remind_at), uuid.UUID(task_id)
    except (TypeError, ValueError):
        raise InvalidQuery(
            "the cursor is not valid", [{"field": "cursor", "message": "invalid cursor"}]
        ) from None


@api.get("/reminders")
@validate_querystring(ReminderQuery)
@validate_response(ReminderPage)
async def list_reminders(query_args: ReminderQuery) -> ReminderPage:
    """The caller's scheduled reminders in [from, to), soonest first."""
    ctx = current_app.extensions["reminders"]
    principal: Principal = g.principal
    start = query_args.from_ or ctx.clock()
    if query_args.to is not None and query_args.to <= start:
        raise InvalidQuery(
            "'to' must be later than 'from'", [{"field": "to", "message": "must be after from"}]
        )
    after = _after(query_args.cursor)
    async with ctx.pool.acquire() as conn:
        rows = await store.upcoming(
            conn, principal.user_id, start, query_args.to, after, query_args.limit + 1
        )
    page = rows[: query_args.limit]
    next_cursor = None
    if len(rows) > query_args.limit:
        last = page[-1]
        next_cursor = encode_cursor(last["remind_at"].isoformat(), str(last["task_id"]))
    return ReminderPage(items=[ReminderItem(**row) for row in page], next_cursor=next_cursor)


@api.get("/me/export")
@document_status(
    200, "The caller's scheduled reminders and reminder history", "application/json", JSON_OBJECT
)
async def export() -> dict[str, object]:
    """The caller's scheduled reminders and reminder history, as JSON."""
    ctx = current_app.extensions["reminders"]
    principal: Principal = g.principal
    async with ctx.pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            data = await store.export(conn, principal.user_id)
    return {
        "service": "reminders",
        "user_id": principal.user_id,
        "exported_at": ctx.clock().isoformat(),
        **data,
    }
