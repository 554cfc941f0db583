"""problem+json (RFC 9457) errors: one base exception, one handler per app."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from pydantic import ValidationError
from quart import Quart, Response
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://taskflow.dev/problems/"


class ProblemError(Exception):
    """Base of every error that maps to an HTTP problem; subclasses set status and slug."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    slug: ClassVar[str] = "bad-request"

    def __init__(
        self,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


class ValidationProblem(ProblemError):
    status = 422
    title = "Validation failed"
    slug = "validation"


class NotFound(ProblemError):
    status = 404
    title = "Not found"
    slug = "not-found"


def problem_response(
    status: int,
    title: str,
    detail: str,
    slug: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or [],
    }
    return Response(orjson.dumps(body), status=status, headers=headers, content_type=PROBLEM_JSON)


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic errors as `[{"field", "message"}]`, field as a dotted path."""
    errors = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"] if part != "__root__")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        else:
            message = error["msg"]
        errors.append(
            {"field": prefix + path if path else prefix.rstrip(".") or "body", "message": message}
        )
    return errors


def install_problem_handlers(app: Quart) -> None:
    """Map domain errors, schema errors and HTTP errors to problem+json."""

    @app.errorhandler(ProblemError)
    async def _problem(exc: ProblemError) -> Response:
        return problem_response(
            exc.status, exc.title, exc.detail, exc.slug, exc.errors, exc.headers
        )

    @app.errorhandler(RequestSchemaValidationError)
    async def _schema(exc: RequestSchemaValidationError) -> Response:
        inner = exc.validation_error
        if isinstance(inner, ValidationError):
            errors = field_errors(inner)
        else:
            errors = [{"field": "body", "message": str(inner)}]
        return problem_response(
            422, "Validation failed", "the request is invalid", "validation", errors
        )

    @app.errorhandler(UnicodeDecodeError)
    async def _not_utf8(exc: UnicodeDecodeError) -> Response:
        # Quart's get_json decodes the body as UTF-8 before (outside) its JSON error path.
        return problem_response(
            400, "Bad Request", "the request body is not valid UTF-8", "bad-request"
        )

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        if status == 405 and exc.get_headers():
            headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return problem_response(
            status,
            exc.name,
            exc.description or exc.name,
            exc.name.lower().replace(" ", "-"),
            headers=headers,
        )

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(
            500, "Internal server error", "an unexpected error occurred", "internal"
        )
