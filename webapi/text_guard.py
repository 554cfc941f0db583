"""Refuse U+0000 in query strings and JSON bodies up front: PostgreSQL text cannot hold
it, so it would otherwise fail deep in a query (a 500, or a broken streamed export)."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Quart, request

from webapi.problems import ProblemError, ValidationProblem

MESSAGE = "must not contain the NUL character (U+0000)"


class NulInQuery(ProblemError):
    status = 400
    title = "Bad request"
    slug = "bad-request"


def nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) holding U+0000, if any."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return child
            found = nul_path(item, child)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


async def refuse_nul() -> None:
    """before_request: a cheap byte search; JSON is parsed only when an escape is there."""
    if b"%00" in request.query_string:
        raise NulInQuery(f"query parameters {MESSAGE}")
    if not request.is_json:
        return
    body = await request.get_data(cache=True)
    if b"\\u0000" not in body:
        return
    try:
        path = nul_path(orjson.loads(body))
    except orjson.JSONDecodeError:
        return  # the route's own JSON parsing answers with its 400
    if path is not None:
        raise ValidationProblem("the request is invalid", [{"field": path, "message": MESSAGE}])


def install_text_guard(app: Quart) -> None:
    app.before_request(refuse_nul)
