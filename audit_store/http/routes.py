"""`/api/v1/audit`: search, verify, export, legal holds, retention and purge."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from pydantic import ValidationError
from quart import Blueprint, Response, current_app, request
from quart_schema import document_querystring, document_request

from audit_store.exceptions import Forbidden
from audit_store.export import CONTENT_TYPES, render
from audit_store.http.schemas import HoldBody
from audit_store.retention import HoldKind, active_holds, place_hold, purge, release_hold
from audit_store.search import AuditQuery, search, stream_entries
from audit_store.services import AuditServices
from audit_store.verify import verify
from webapi.auth import Principal, bearer_principal
from webapi.openapi import JSON_OBJECT, document_status
from webapi.problems import ValidationProblem, field_errors

audit = Blueprint("audit", __name__, url_prefix="/api/v1/audit")


def _services() -> AuditServices:
    services: AuditServices = current_app.extensions["audit"]
    return services


def _principal(operator: bool = False) -> Principal:
    principal = bearer_principal(_services().tokens, request.headers.get("Authorization"))
    if operator and not principal.is_operator:
        raise Forbidden("this endpoint is for operators")
    return principal


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, content_type="application/json")


@audit.get("")
@document_status(200, "A page of entries", "application/json", JSON_OBJECT)
@document_querystring(AuditQuery)
async def list_entries() -> Response:
    principal = _principal()
    services = _services()
    page = await search(services.pool, AuditQuery.parse(request.args), principal, services.keyring)
    return _json({"items": page.items, "next_cursor": page.next_cursor})


@audit.get("/verify")
@document_status(200, "The verification report", "application/json", JSON_OBJECT)
async def verify_chains() -> Response:
    _principal(operator=True)
    services = _services()
    report = await verify(services.pool, services.signer)
    services.metrics.record_verify(report, time.time())
    return _json(report.as_json())


@audit.get("/export")
@document_status(200, "Entries as JSON lines or CSV", "application/jsonl")
@document_status(200, "Entries as JSON lines or CSV", "text/csv")
@document_querystring(AuditQuery)
async def export() -> Response:
    principal = _principal(operator=True)
    fmt = request.args.get("format", "jsonl")
    if fmt not in CONTENT_TYPES:
        raise ValidationProblem(
            "unknown export format", [{"field": "format", "message": "use jsonl or csv"}]
        )
    query = AuditQuery.parse(request.args)
    services = _services()
    entries = stream_entries(services.pool, query, principal, services.keyring)
    body = render(fmt, entries)  # type: ignore[arg-type]
    response = Response(body, content_type=CONTENT_TYPES[fmt])
    response.timeout = None  # a large export may stream for longer than RESPONSE_TIMEOUT
    response.headers["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
    return response


@audit.get("/holds")
@document_status(200, "Active legal holds", "application/json", JSON_OBJECT)
async def list_holds() -> Response:
    _principal(operator=True)
    holds = await active_holds(_services().pool)
    return _json({"items": [h.as_json() for h in holds], "next_cursor": None})


@audit.post("/holds")
@document_status(201, "Hold placed", "application/json", JSON_OBJECT)
@document_status(200, "Hold already in place", "application/json", JSON_OBJECT)
@document_request(HoldBody)
async def create_hold() -> Response:
    principal = _principal(operator=True)
    try:
        body = HoldBody.model_validate_json(await request.get_data())
    except ValidationError as exc:
        raise ValidationProblem("the request is invalid", field_errors(exc)) from None
    kind: HoldKind = "user" if body.user_id is not None else "task"
    value = body.user_id or body.task_id or ""
    services = _services()
    hold, created = await place_hold(
        services.pool, kind, value, body.reason, principal.user_id, services.clock
    )
    response = _json(hold.as_json(), 201 if created else 200)
    response.headers["Location"] = f"/api/v1/audit/holds/{hold.id}"
    return response


@audit.delete("/holds/<hold_id>")
@document_status(204, "Released")
async def delete_hold(hold_id: str) -> Response:
    principal = _principal(operator=True)
    try:
        parsed = uuid.UUID(hold_id)
    except ValueError:
        raise ValidationProblem(
            "invalid hold id", [{"field": "hold_id", "message": "not a UUID"}]
        ) from None
    services = _services()
    await release_hold(services.pool, principal.user_id, services.clock, hold_id=parsed)
    return Response(status=204)


@audit.delete("/holds")
@document_status(204, "Released")
async def delete_hold_by_target() -> Response:
    principal = _principal(operator=True)
    user_id, task_id = request.args.get("user_id"), request.args.get("task_id")
    if (user_id is None) == (task_id is None):
        raise ValidationProblem(
            "give exactly one of user_id or task_id",
            [{"field": "user_id", "message": "exactly one of user_id or task_id"}],
        )
    kind: HoldKind = "user" if user_id is not None else "task"
    services = _services()
    await release_hold(
        services.pool, principal.user_id, services.clock, kind=kind, value=user_id or task_id
    )
    return Response(status=204)


@audit.get("/retention")
@document_status(200, "Retention policies", "application/json", JSON_OBJECT)
async def retention() -> Response:
    _principal(operator=True)
    settings = _services().settings
    return _json(
        {"policies": settings.retention_days, "default_days": settings.retention_default_days}
    )


@audit.post("/purge")
@document_status(200, "What was purged", "application/json", JSON_OBJECT)
async def purge_now() -> Response:
    principal = _principal(operator=True)
    services = _services()
    result = await purge(
        services.pool,
        services.settings.retention_days,
        services.settings.retention_default_days,
        services.clock,
        actor=principal.user_id,
        batch=services.settings.purge_batch,
    )
    return _json({"purged": result.purged, "held": result.held, "event_id": result.event_id})
