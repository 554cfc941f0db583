"""A leaner ASGI HTTP connection for Quart apps answering many small JSON requests.

Quart's own connection runs each request as three tasks (one reading the body, one running
the handler, one more for `wait_for` around the send) and awaits them. This one reads the
body first and then runs the handler and the send in the server's task (the response
timeout is an `asyncio.timeout`, not a task), and sends an in-memory body as one ASGI
message. Routing, hooks, the request context and error handling stay Quart's.

The difference a caller can see: a client that leaves while its request is being handled no
longer cancels the handler (the change completes; its answer goes nowhere). Routes that
stream a request body as it arrives, or hold the request open, want Quart's connection.
Install it with `app.asgi_http_class = InlineHttpConnection`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from quart.asgi import ASGIHTTPConnection, _handle_exception
from quart.utils import encode_headers
from quart.wrappers import Request, Response
from quart.wrappers.response import DataBody


class InlineHttpConnection(ASGIHTTPConnection):
    """One task per request: the body is read before the handler runs."""

    async def __call__(self, receive: Any, send: Any) -> None:
        request = self._create_request_from_scope(send)
        limit: int | None = self.app.config["MAX_CONTENT_LENGTH"]
        received = 0
        while limit is None or ((request.content_length or 0) <= limit and received <= limit):
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # as Quart: the client left before the request was whole
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                request.body.append(chunk)
                if not message.get("more_body", False):
                    break
        # Over MAX_CONTENT_LENGTH the body raises 413 in the handler, as Quart's would.
        request.body.set_complete()
        await self.handle_request(request, send)

    async def handle_request(self, request: Request, send: Any) -> None:
        try:
            response = await self.app.handle_request(request)
        except Exception as error:  # noqa: BLE001 - Quart's own last-resort handling
            response = await _handle_exception(self.app, error)
        if isinstance(response, Response) and response.timeout is not Ellipsis:
            timeout: float | None = response.timeout
        else:
            timeout = self.app.config["RESPONSE_TIMEOUT"]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._send_response(send, response)

    async def _send_response(self, send: Any, response: Any) -> None:
        if not isinstance(response, Response) or not isinstance(response.response, DataBody):
            await super()._send_response(send, response)
            return
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": encode_headers(response.headers),
            }
        )
        data = response.response
        await send(
            {
                "type": "http.response.body",
                "body": data.data[data.begin : data.end],
                "more_body": False,
            }
        )
