"""Task routes (`/api/v1/tasks`): auth, idempotency and transactions around the use cases."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import orjson
from quart import Blueprint, Response, g, request
from quart_schema import document_response, validate_querystring
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from task_api import queries, services
from task_api.context import task_context
from task_api.db import outbox
from task_api.db.models import Task
from task_api.db.written import collecting
from task_api.http import idempotency
from task_api.http.replies import Reply, parse_if_match, state_reply, task_json, task_reply
from task_api.http.schemas import SnoozeRequest, TaskCreate, TaskListQuery, TaskPatch
from task_api.http.views import TaskOut, TaskPage
from webapi.auth import Principal, bearer_principal
from webapi.openapi import document_status
from webapi.validation import validate_json

tasks = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks")

Handler = Callable[[BaseDBAsyncClient], Awaitable[Reply]]
Transition = Callable[
    [BaseDBAsyncClient, services.EventSink, str, uuid.UUID, int | None, datetime],
    Awaitable[Task],
]


@tasks.before_request
async def authenticate() -> None:
    g.principal = bearer_principal(task_context().tokens, request.headers.get("Authorization"))


def principal() -> Principal:
    who: Principal = g.principal
    return who


def if_match() -> int | None:
    return parse_if_match(request.headers.get("If-Match"))


def database() -> BaseDBAsyncClient:
    """The pool, for one statement that needs no transaction around it (autocommit)."""
    pool: BaseDBAsyncClient = connections.get("default")
    return pool


async def write(handler: Handler, *, one_statement: bool = False) -> Response:
    """Run a change in one transaction, honouring `Idempotency-Key`; hand what it wrote to
    the relay after the commit.

    A handler that writes with a single statement (`one_statement`: a create, whose task and
    outbox rows go in one INSERT) runs without BEGIN/COMMIT when nothing else joins it: the
    statement is atomic on its own, and two round trips of three are saved.
    """
    ctx = task_context()
    key = request.headers.get("Idempotency-Key")
    with collecting() as written:
        if one_statement and key is None and not ctx.notify_relays:
            reply = await handler(database())
        else:
            reply = await _in_transaction(handler, key)
        ctx.on_commit(written)  # a replay wrote nothing and hands nothing over
    return reply.to_response()


async def _in_transaction(handler: Handler, key: str | None) -> Reply:
    ctx = task_context()
    user_id = principal().user_id
    async with in_transaction() as conn:
        if key is not None:
            body = await request.get_data(cache=True, as_text=False, parse_form_data=False)
            fingerprint = idempotency.request_fingerprint(request.method, request.path, body)
            replay = await idempotency.claim(
                conn,
                user_id,
                idempotency.check_key(key),
                fingerprint,
                ctx.clock(),
                ctx.idempotency_ttl,
            )
            if replay is not None:
                return replay
        reply = await handler(conn)
        if key is not None:
            await idempotency.store(conn, user_id, key, reply)
        if ctx.notify_relays:
            await outbox.notify_relays(conn)
    return reply


@tasks.post("")
@validate_json(TaskCreate)
@document_response(TaskOut, 201)
async def create_task(data: TaskCreate) -> Response:
    ctx, user_id, command = task_context(), principal().user_id, data.to_command()

    async def handler(conn: BaseDBAsyncClient) -> Reply:
        state = await services.create_task(conn, ctx.sink, user_id, command, ctx.clock())
        return state_reply(state, 201, location=True)

    return await write(handler, one_statement=True)


@tasks.get("")
@validate_querystring(TaskListQuery)
@document_response(TaskPage)
async def list_tasks(query_args: TaskListQuery) -> Response:
    page, next_cursor = await queries.list_tasks(
        database(), principal().user_id, query_args.to_filter()
    )
    body = b'{"items":[' + b",".join(task_json(t) for t in page) + b'],"next_cursor":'
    body += orjson.dumps(next_cursor) + b"}"
    return Response(body, content_type="application/json")


@tasks.get("/<uuid:task_id>")
@document_response(TaskOut)
async def get_task(task_id: uuid.UUID) -> Response:
    task = await services.get_task(database(), principal().user_id, task_id)
    return task_reply(task).to_response()


@tasks.patch("/<uuid:task_id>")
@validate_json(TaskPatch)
@document_response(TaskOut)
async def update_task(task_id: uuid.UUID, data: TaskPatch) -> Response:
    ctx, user_id = task_context(), principal().user_id
    command = data.to_command(task_id, if_match())

    async def handler(conn: BaseDBAsyncClient) -> Reply:
        task = await services.update_task(conn, ctx.sink, user_id, command, ctx.clock())
        return task_reply(task)

    return await write(handler)


async def transition(task_id: uuid.UUID, change: Transition) -> Response:
    """A body-less state change (complete, reopen) of one task, as a write."""
    ctx, user_id, version = task_context(), principal().user_id, if_match()

    async def handler(conn: BaseDBAsyncClient) -> Reply:
        return task_reply(await change(conn, ctx.sink, user_id, task_id, version, ctx.clock()))

    return await write(handler)


@tasks.post("/<uuid:task_id>/complete")
@document_response(TaskOut)
async def complete_task(task_id: uuid.UUID) -> Response:
    return await transition(task_id, services.complete_task)


@tasks.post("/<uuid:task_id>/reopen")
@document_response(TaskOut)
async def reopen_task(task_id: uuid.UUID) -> Response:
    return await transition(task_id, services.reopen_task)


@tasks.post("/<uuid:task_id>/snooze")
@validate_json(SnoozeRequest)
@document_response(TaskOut)
async def snooze_task(task_id: uuid.UUID, data: SnoozeRequest) -> Response:
    ctx, user_id, version = task_context(), principal().user_id, if_match()

    async def handler(conn: BaseDBAsyncClient) -> Reply:
        task = await services.snooze_task(
            conn, ctx.sink, user_id, task_id, data.until, data.for_, version, ctx.clock()
        )
        return task_reply(task)

    return await write(handler)


@tasks.delete("/<uuid:task_id>")
@document_status(204, "Deleted")
async def delete_task(task_id: uuid.UUID) -> Response:
    ctx, user_id, version = task_context(), principal().user_id, if_match()

    async def handler(conn: BaseDBAsyncClient) -> Reply:
        await services.delete_task(conn, ctx.sink, user_id, task_id, version, ctx.clock())
        return Reply(204)

    return await write(handler)
