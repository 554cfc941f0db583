"""OpenAPI that says what the routes really return: problem+json 4xx, and bodies with no model.

`ProblemOpenAPIProvider` (pass it to `QuartSchema`) adds the RFC 9457 problem schema as the
`4XX` response of every operation, since `install_problem_handlers` turns every client error
into one; `document_status` declares a response a route builds by hand (a 204, a CSV
export, the Prometheus text format), which quart-schema cannot see.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart_schema import OpenAPIProvider
from werkzeug.routing import Rule

from webapi.problems import PROBLEM_JSON

T = TypeVar("T")
_RESPONSES_ATTRIBUTE = "_taskflow_openapi_responses"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
JSON_OBJECT: dict[str, Any] = {"type": "object"}


def problem_response(description: str = "A problem (RFC 9457)") -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def document_status(
    status: int | str,
    description: str,
    media_type: str | None = None,
    schema: dict[str, Any] | None = None,
) -> Callable[[T], T]:
    """Declare one response of a route; `media_type=None` means no body (e.g. 204).

    Declaring the same status again adds another media type (e.g. CSV beside JSON lines).
    """

    def decorator(func: T) -> T:
        declared: dict[str, Any] = dict(getattr(func, _RESPONSES_ATTRIBUTE, {}))
        response = declared.get(str(status), {"description": description})
        if media_type is not None:
            content = {**response.get("content", {}), media_type: {"schema": schema or {}}}
            response = {**response, "content": content}
        declared[str(status)] = response
        setattr(func, _RESPONSES_ATTRIBUTE, declared)
        return func

    return decorator


class ProblemOpenAPIProvider(OpenAPIProvider):
    """quart-schema's provider plus `document_status` responses and problem+json `4XX`."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        document["components"]["schemas"]["Problem"] = PROBLEM_SCHEMA
        return document

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        declared = getattr(self._app.view_functions[rule.endpoint], _RESPONSES_ATTRIBUTE, {})
        for operations in paths.values():
            for method, operation in operations.items():
                # quart-schema shares one responses dict between a rule's methods: copy it.
                responses = {str(code): body for code, body in operation["responses"].items()}
                responses.update(declared)
                responses.setdefault("4XX", problem_response())
                operations[method] = {**operation, "responses": responses}
        return paths, components
