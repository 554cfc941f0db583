"""Web Push (RFC 8030/8291/8292) with pywebpush and VAPID; subscriptions live per user.

A push service answering 404 or 410 says the subscription is gone: it is removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import orjson
from py_vapid import Vapid
from pywebpush import WebPushException, webpush_async

from notify_ws.channels.base import Outcome, Outgoing
from notify_ws.db.preferences import PushSubscription
from notify_ws.exceptions import ChannelError
from notify_ws.settings import NotifySettings

GONE = {404, 410}
RETRYABLE = {408, 425, 429}

LoadSubscriptions = Callable[[str], Awaitable[Sequence[PushSubscription]]]
DropSubscription = Callable[[PushSubscription], Awaitable[None]]


def generate_vapid_keys() -> tuple[str, str]:
    """(private, public) VAPID keys as base64url: raw 32-byte scalar, uncompressed point."""
    from cryptography.hazmat.primitives import serialization
    from py_vapid.utils import b64urlencode

    vapid = Vapid()
    vapid.generate_keys()
    private = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64urlencode(private), b64urlencode(public)


class WebPush:
    name = "push"

    def __init__(
        self, settings: NotifySettings, load: LoadSubscriptions, drop: DropSubscription
    ) -> None:
        self._s = settings
        self._load, self._drop = load, drop
        self._vapid: Any = None
        self._session: aiohttp.ClientSession | None = None

    def breaker_key(self, message: Outgoing) -> str:
        return "push"

    async def start(self) -> None:
        if self._s.vapid_private_key is not None:
            self._vapid = Vapid.from_string(self._s.vapid_private_key.get_secret_value())
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._s.channel_timeout.total_seconds())
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, message: Outgoing) -> Outcome:
        if self._vapid is None:
            raise ChannelError("no VAPID key configured", permanent=True)
        subs = await self._load(message.user_id)
        if not subs:
            return "skipped"
        data = orjson.dumps(message.payload()).decode()
        results = await asyncio.gather(
            *(self._send_one(sub, data) for sub in subs), return_exceptions=True
        )
        sent = sum(1 for r in results if r is True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors and not sent:
            first = errors[0]
            if isinstance(first, ChannelError):
                raise first
            raise ChannelError(f"push failed: {first!r}")
        return "delivered" if sent else "skipped"

    async def _send_one(self, sub: PushSubscription, data: str) -> bool:
        """True if sent, False if the subscription was gone (and removed)."""
        try:
            await webpush_async(
                sub.info(),
                data=data,
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self._s.vapid_subject},
                ttl=self._s.push_ttl,
                aiohttp_session=self._session,
                timeout=self._s.channel_timeout.total_seconds(),
            )
        except WebPushException as exc:
            status = exc.status_code
            if status in GONE:
                await self._drop(sub)
                return False
            permanent = status is not None and 400 <= status < 500 and status not in RETRYABLE
            raise ChannelError(f"push service answered {status}", permanent=permanent) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelError(f"push service unreachable: {exc!r}") from None
        return True
