"""Webhook: an HTTP POST of the notification JSON, signed with HMAC-SHA256.

The signature header reads `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed
with `TASKFLOW_NOTIFY_WEBHOOK_SECRET`; receivers recompute it and check the timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import orjson

from notify_ws.channels.base import Outcome, Outgoing
from notify_ws.exceptions import ChannelError
from notify_ws.settings import NotifySettings

RETRYABLE = {408, 425, 429}


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes) -> bool:
    """Receiver-side check (also used by the tests)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        expected = sign(secret, int(parts["t"]), body)
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(expected, header)


class Webhook:
    name = "webhook"

    def __init__(self, settings: NotifySettings, unix_time: Callable[[], float]) -> None:
        self._s = settings
        self._secret = settings.webhook_secret.get_secret_value().encode()
        self._unix_time = unix_time
        self._client: httpx.AsyncClient | None = None

    def breaker_key(self, message: Outgoing) -> str:
        url = message.prefs.webhook_url
        return f"webhook:{urlsplit(str(url)).netloc}" if url else "webhook"

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self._s.channel_timeout.total_seconds(), follow_redirects=False
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, message: Outgoing) -> Outcome:
        url = message.prefs.webhook_url
        if url is None:
            return "skipped"
        if self._client is None:
            raise RuntimeError("webhook channel not started")
        body = orjson.dumps(message.payload())
        headers = {
            "content-type": "application/json",
            self._s.webhook_signature_header: sign(self._secret, int(self._unix_time()), body),
            "user-agent": "taskflow-notify/1",
        }
        try:
            response = await self._client.post(str(url), content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelError(f"webhook unreachable: {type(exc).__name__}: {exc}") from None
        if response.is_success:
            return "delivered"
        status = response.status_code
        permanent = 400 <= status < 500 and status not in RETRYABLE
        raise ChannelError(f"webhook answered {status}", permanent=permanent)
