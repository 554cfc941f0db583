"""One tool call: validate the arguments, run the use case in one transaction (with the
idempotency key), and turn every failure into a tool error naming the field, never a crash.

Each call gets a span continuing the request's `traceparent`, a metric sample by tool and
outcome, and one log line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from time import perf_counter
from typing import Any

import orjson
from mcp_types import CallToolResult, TextContent
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ValidationError
from tortoise.transactions import in_transaction

from task_api import idempotency
from task_api.db import outbox
from task_api.db.written import collecting
from task_api.mcp.tools import BY_NAME, Call, Tool
from task_api.metrics import McpMetrics
from webapi.problems import ProblemError, field_errors
from webapi.text_guard import MESSAGE as NUL_MESSAGE
from webapi.text_guard import nul_path

log = logging.getLogger("taskflow.mcp")

OK = "ok"
INVALID = "invalid_arguments"
UNKNOWN_TOOL = "unknown_tool"
INTERNAL = "internal"


class ToolError(Exception):
    """A call that failed for a reason the caller can act on (outcome, message, fields)."""

    def __init__(self, outcome: str, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail)
        self.outcome, self.detail, self.errors = outcome, detail, errors


def error_result(outcome: str, detail: str, errors: list[dict[str, str]]) -> CallToolResult:
    """A tool error (isError) a model can read: what failed and which argument to fix."""
    lines = [f"Error ({outcome}): {detail}"]
    lines += [f"- {error['field']}: {error['message']}" for error in errors]
    body = {"error": outcome, "detail": detail, "errors": errors}
    text = "\n".join(lines) + "\n" + orjson.dumps(body).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def ok_result(data: dict[str, Any]) -> CallToolResult:
    text = orjson.dumps(data).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def parse_arguments(tool: Tool, arguments: Mapping[str, Any] | None) -> BaseModel:
    raw = dict(arguments or {})
    where = nul_path(raw)
    if where is not None:
        raise ToolError(
            INVALID, "the arguments are invalid", [{"field": where, "message": NUL_MESSAGE}]
        )
    try:
        return tool.args.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {**error, "field": "arguments"} if error["field"] == "body" else error
            for error in field_errors(exc)
        ]
        raise ToolError(INVALID, "the arguments are invalid", errors) from None


async def execute(tool: Tool, call: Call, args: BaseModel) -> dict[str, Any]:
    """Run the tool's use case in one transaction, honouring `idempotency_key`."""
    if not tool.writes:
        async with in_transaction() as conn:
            return await tool.run(conn, call, args)
    ctx = call.ctx
    key: str | None = getattr(args, "idempotency_key", None)
    request_hash = idempotency.fingerprint(
        b"mcp",
        tool.name.encode(),
        orjson.dumps(
            args.model_dump(
                mode="json", by_alias=True, exclude_unset=True, exclude={"idempotency_key"}
            ),
            option=orjson.OPT_SORT_KEYS,
        ),
    )
    with collecting() as written:
        result = await _write(tool, call, args, key, request_hash)
        ctx.on_commit(written)  # a replay wrote nothing and hands nothing over
    return result


async def _write(
    tool: Tool, call: Call, args: BaseModel, key: str | None, request_hash: str
) -> dict[str, Any]:
    ctx = call.ctx
    async with in_transaction() as conn:
        if key is not None:
            replay = await idempotency.claim(
                conn, call.user_id, key, request_hash, ctx.clock(), ctx.idempotency_ttl
            )
            if replay is not None:
                replayed: dict[str, Any] = orjson.loads(replay.body)
                return replayed
        result = await tool.run(conn, call, args)
        if key is not None:
            await idempotency.store(
                conn, call.user_id, key, idempotency.Outcome(200, orjson.dumps(result))
            )
        if ctx.notify_relays:
            await outbox.notify_relays(conn)
    return result


class ToolCalls:
    """Runs tool calls for one server, with its tracer and metrics."""

    def __init__(self, tracer: trace.Tracer, metrics: McpMetrics) -> None:
        self.tracer, self.metrics = tracer, metrics

    async def __call__(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        call: Call,
        headers: Mapping[str, str],
    ) -> CallToolResult:
        parent = propagate.extract(dict(headers))
        start = perf_counter()
        with self.tracer.start_as_current_span(
            f"mcp tools/call {name}", context=parent, kind=SpanKind.SERVER
        ) as span:
            span.set_attribute("mcp.method.name", "tools/call")
            span.set_attribute("gen_ai.tool.name", name)
            result, outcome = await self._run(name, arguments, call)
            span.set_attribute("taskflow.mcp.outcome", outcome)
            if outcome == INTERNAL:
                span.set_status(Status(StatusCode.ERROR, "unexpected error"))
            took = perf_counter() - start
            self.metrics.observe(name if name in BY_NAME else "<unknown>", outcome, took)
            log.info(
                "tool %s %s %.1fms",
                name,
                outcome,
                took * 1000,
                extra={"mcp_tool": name, "mcp_outcome": outcome, "user_id": call.user_id},
            )
        return result

    async def _run(
        self, name: str, arguments: Mapping[str, Any] | None, call: Call
    ) -> tuple[CallToolResult, str]:
        tool = BY_NAME.get(name)
        try:
            if tool is None:
                raise ToolError(
                    UNKNOWN_TOOL,
                    f"no tool named {name!r}",
                    [{"field": "name", "message": "unknown tool"}],
                )
            data = await execute(tool, call, parse_arguments(tool, arguments))
        except ToolError as exc:
            return error_result(exc.outcome, exc.detail, exc.errors), exc.outcome
        except ProblemError as exc:
            outcome = exc.slug.replace("-", "_")
            return error_result(outcome, exc.detail, exc.errors), outcome
        except Exception:
            log.exception("tool %s failed", name)
            return error_result(INTERNAL, "an unexpected error occurred; retry later", []), INTERNAL
        return ok_result(data), OK
