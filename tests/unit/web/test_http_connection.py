"""InlineHttpConnection: the body is read first, the handler runs in the server's task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from quart import Quart, Response, request

from webapi.http_connection import InlineHttpConnection


def make_app(max_body: int = 64) -> tuple[Quart, list[bytes]]:
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body
    app.asgi_http_class = InlineHttpConnection
    seen: list[bytes] = []

    @app.post("/echo")
    async def echo() -> Response:
        body = await request.get_data(as_text=False)
        seen.append(body)
        return Response(body, status=201, headers={"X-Seen": str(len(body))})

    @app.get("/stream")
    async def stream() -> Response:
        async def parts() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return Response(parts())

    return app, seen


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *(headers or [])],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


async def call(app: Quart, asgi_scope: Any, messages: list[dict[str, Any]]) -> list[Any]:
    """Run one request; returns what the app sent. Receiving past `messages` fails."""
    inbox = iter(messages)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return next(inbox)

    async def send(message: Any) -> None:
        sent.append(message)

    await app(asgi_scope, receive, send)
    return sent


def body_message(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_a_body_in_parts_reaches_the_handler_whole_and_goes_back_as_one_message() -> None:
    app, seen = make_app()
    sent = await call(
        app, scope("POST", "/echo"), [body_message(b"hello ", more=True), body_message(b"world")]
    )
    assert seen == [b"hello world"]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 201
    assert (b"x-seen", b"11") in sent[0]["headers"]
    assert sent[1] == {"type": "http.response.body", "body": b"hello world", "more_body": False}


async def test_a_body_over_the_limit_is_413_without_reading_the_rest() -> None:
    app, seen = make_app(max_body=8)
    # Only two parts are there to receive: a third read would raise StopIteration.
    sent = await call(
        app,
        scope("POST", "/echo"),
        [body_message(b"12345", more=True), body_message(b"67890", more=True)],
    )
    assert seen == []
    assert sent[0]["status"] == 413


async def test_a_declared_length_over_the_limit_is_413_before_any_read() -> None:
    app, seen = make_app(max_body=8)
    sent = await call(app, scope("POST", "/echo", [(b"content-length", b"100")]), [])
    assert seen == []
    assert sent[0]["status"] == 413


async def test_a_client_gone_before_the_body_is_whole_gets_nothing() -> None:
    app, seen = make_app()
    sent = await call(
        app, scope("POST", "/echo"), [body_message(b"half", more=True), {"type": "http.disconnect"}]
    )
    assert seen == [] and sent == []


async def test_a_streamed_response_is_sent_part_by_part() -> None:
    app, _ = make_app()
    sent = await call(app, scope("GET", "/stream"), [body_message(b"")])
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert sent[0]["status"] == 200
    assert b"".join(bodies) == b"ab" and sent[-1]["more_body"] is False
