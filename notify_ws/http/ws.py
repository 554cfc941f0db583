"""`GET /ws?token=<JWT>[&since=<seq>]`: the WebSocket endpoint (api.md)."""

from __future__ import annotations

import asyncio
import contextlib

from quart import Blueprint, current_app, websocket

from notify_ws.context import notify_context
from notify_ws.db import erasure as er
from notify_ws.hub.erasures import USER_ERASED, USER_ERASED_REASON
from notify_ws.hub.hub import Connection
from notify_ws.hub.session import run_connection
from webapi.auth import Unauthorized
from webapi.hardening import hardening_of
from webapi.limits import WebSocketPolicyViolation

ws = Blueprint("notify_ws", __name__)

UNAUTHORIZED = 4401
BAD_REQUEST = 4400


@ws.websocket("/ws")
async def socket() -> None:
    ctx = notify_context()
    # Accept first: a close code can only be sent on an open WebSocket.
    await websocket.accept()
    try:
        # Only the user id stays with the socket (for hours), not the whole principal.
        user_id = (await ctx.tokens.verify_async(websocket.args.get("token", ""))).user_id
    except Unauthorized:
        await websocket.close(UNAUTHORIZED, "unauthorized")
        return
    since: int | None = None
    raw_since = websocket.args.get("since")
    if raw_since is not None:
        if not raw_since.isdigit() or len(raw_since) > 18:
            await websocket.close(BAD_REQUEST, "since must be a non-negative integer")
            return
        since = int(raw_since)
    async with ctx.pool.acquire() as db:
        erased = await er.is_erased(db, user_id)
    # `erased_recently` (no await from here to the hub's register): an erasure committed
    # while the query above ran would otherwise miss this socket.
    if erased or user_id in ctx.erased_recently:
        await websocket.close(USER_ERASED, USER_ERASED_REASON)
        return
    settings = ctx.config.notify
    conn = Connection(user_id, settings.ws_queue_size)
    guard = hardening_of(current_app).message_guard()

    async def receive() -> str | bytes:
        message = await websocket.receive()
        guard.check(message)  # too big: 1009; too many: 1008
        return message

    reason = ""
    try:
        code = await run_connection(ctx.session, ctx.hub, conn, websocket.send, receive, since)
    except WebSocketPolicyViolation as violation:
        code, reason = violation.code, violation.reason
    if code == USER_ERASED:
        reason = USER_ERASED_REASON
    if code is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settings.ws_close_timeout.total_seconds()):
                await websocket.close(code, reason)
