"""REST: inbox, read marks, preferences, push subscriptions and the user's export
(`/api/v1/...`). An erased user gets 410 on every route."""

from __future__ import annotations

import uuid

from quart import Blueprint, Response, g, request
from quart_schema import validate_querystring, validate_request, validate_response

from notify_ws.context import notify_context
from notify_ws.db import erasure as er
from notify_ws.db import export as ex
from notify_ws.db import notifications as nt
from notify_ws.db import preferences as pf
from notify_ws.exceptions import (
    InvalidPreferences,
    NotificationNotFound,
    SubscriptionNotFound,
    UserGone,
)
from notify_ws.http.schemas import (
    InboxPage,
    InboxQuery,
    PushSubscriptionIn,
    PushSubscriptionOut,
    ReadAllResult,
    ReadResult,
)
from notify_ws.preferences import Preferences
from webapi.auth import Principal, bearer_principal
from webapi.openapi import JSON_OBJECT, document_status
from webapi.paging import decode_cursor, encode_cursor
from webapi.problems import ValidationProblem

api = Blueprint("notify_api", __name__, url_prefix="/api/v1")


@api.before_request
async def authenticate() -> None:
    ctx = notify_context()
    g.principal = bearer_principal(ctx.tokens, request.headers.get("Authorization"))
    if g.principal.user_id in ctx.erased_recently:
        raise UserGone()
    async with ctx.pool.acquire() as conn:
        if await er.is_erased(conn, g.principal.user_id):
            raise UserGone()


def user_id() -> str:
    who: Principal = g.principal
    return who.user_id


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationProblem(
            f"{what} must be a UUID", [{"field": what, "message": "not a UUID"}]
        ) from None


@api.get("/notifications")
@validate_querystring(InboxQuery)
@validate_response(InboxPage)
async def list_notifications(query_args: InboxQuery) -> dict[str, object]:
    ctx, user = notify_context(), user_id()
    before = None
    if query_args.cursor is not None:
        (before,) = decode_cursor(query_args.cursor, 1)
        if not isinstance(before, int):
            raise ValidationProblem(
                "the cursor is not valid", [{"field": "cursor", "message": "invalid cursor"}]
            )
    async with ctx.pool.acquire() as conn:
        rows = await nt.page(conn, user, query_args.unread_only, before, query_args.limit + 1)
        unread, _ = await nt.counter(conn, user)
    more = len(rows) > query_args.limit
    rows = rows[: query_args.limit]
    return {
        "items": [r.body_json() for r in rows],
        "next_cursor": encode_cursor(rows[-1].seq) if more else None,
        "unread_count": unread,
    }


@api.post("/notifications/<notification_id>/read")
@validate_response(ReadResult)
async def read_one(notification_id: str) -> dict[str, object]:
    ctx, user = notify_context(), user_id()
    nid = _uuid(notification_id, "id")
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await nt.exists(conn, user, nid):
            raise NotificationNotFound()
        await nt.mark_read(conn, user, [nid], ctx.clock.now())
        unread, _ = await nt.counter(conn, user)
    return {"id": str(nid), "read": True, "unread_count": unread}


@api.post("/notifications/read-all")
@validate_response(ReadAllResult)
async def read_all() -> dict[str, object]:
    ctx, user = notify_context(), user_id()
    async with ctx.pool.acquire() as conn, conn.transaction():
        marked = await nt.mark_read(conn, user, None, ctx.clock.now())
        unread, _ = await nt.counter(conn, user)
    return {"marked": marked, "unread_count": unread}


@api.get("/preferences")
@validate_response(Preferences)
async def get_preferences() -> Preferences:
    ctx = notify_context()
    async with ctx.pool.acquire() as conn:
        return await pf.get(conn, user_id())


@api.put("/preferences")
@validate_request(Preferences)
@validate_response(Preferences)
async def put_preferences(data: Preferences) -> Preferences:
    ctx = notify_context()
    if data.webhook_url is not None:
        why = await ctx.webhook_targets.check_url(str(data.webhook_url))
        if why is not None:
            raise InvalidPreferences("webhook_url", f"webhook_url is not allowed: {why}")
    async with ctx.pool.acquire() as conn:
        await pf.put(conn, user_id(), data, ctx.clock.now())
    return data


@api.post("/push-subscriptions")
@validate_request(PushSubscriptionIn)
@validate_response(PushSubscriptionOut, 201)
@validate_response(PushSubscriptionOut, 200)
async def add_push_subscription(data: PushSubscriptionIn) -> tuple[dict[str, object], int]:
    ctx = notify_context()
    async with ctx.pool.acquire() as conn:
        sub, created = await pf.add_subscription(
            conn, user_id(), str(data.endpoint), data.keys.p256dh, data.keys.auth, ctx.clock.now()
        )
    return sub.json(), 201 if created else 200


@api.delete("/push-subscriptions/<subscription_id>")
@document_status(204, "Deleted")
async def delete_push_subscription(subscription_id: str) -> Response:
    ctx = notify_context()
    sid = _uuid(subscription_id, "id")
    async with ctx.pool.acquire() as conn:
        if not await pf.delete_subscription(conn, user_id(), sid):
            raise SubscriptionNotFound()
    return Response(status=204)


@api.get("/me/export")
@document_status(
    200,
    "The caller's inbox, preferences, push subscriptions and deliveries",
    "application/json",
    JSON_OBJECT,
)
async def export() -> dict[str, object]:
    """Everything this service keeps of the caller, as JSON (data portability)."""
    ctx = notify_context()
    async with ctx.pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await ex.export(conn, user_id(), ctx.clock.now())
