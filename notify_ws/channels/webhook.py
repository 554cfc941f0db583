"""Webhook: an HTTP POST of the notification JSON, signed with HMAC-SHA256.

The signature header reads `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed
with `TASKFLOW_NOTIFY_WEBHOOK_SECRET`; receivers recompute it and check the timestamp.
Outside local mode every delivery resolves the host again, refuses non-public addresses
(`webhook_targets`) and connects to the address it vetted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import orjson

from notify_ws.channels.base import Outcome, Outgoing
from notify_ws.channels.webhook_targets import (
    Address,
    Resolver,
    TargetPolicy,
    TargetRefused,
    TargetUnresolved,
)
from notify_ws.exceptions import ChannelError
from notify_ws.settings import Config, NotifySettings

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


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo in the loop's executor: DNS never blocks the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def target_policy(config: Config, resolver: Resolver = system_resolver) -> TargetPolicy:
    """The webhook target rules of this process: enforced unless in local mode."""
    return policy_from(config.notify, not config.local, resolver)


def policy_from(s: NotifySettings, enforce: bool, resolver: Resolver) -> TargetPolicy:
    return TargetPolicy.build(
        enforce, resolver, s.webhook_allowed_hosts, s.webhook_allowed_networks
    )


def pin(request: httpx.Request, address: Address) -> httpx.Request:
    """Send `request` to the vetted `address`, still as a request for its host name.

    Why a rewritten URL rather than letting httpx resolve: httpx (httpcore) would call
    getaddrinfo again when it connects, and a rebinding DNS server can answer that second
    lookup with 127.0.0.1. With the address in the URL nothing is resolved after the
    check. The `Host` header was set from the original URL when the request was built, and
    TLS keeps the name for SNI and the certificate check (httpcore's `sni_hostname`).
    """
    if request.url.scheme == "https":
        request.extensions["sni_hostname"] = request.url.host
    request.url = request.url.copy_with(host=str(address))
    return request


class Webhook:
    name = "webhook"

    def __init__(
        self,
        settings: NotifySettings,
        unix_time: Callable[[], float],
        targets: TargetPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._s = settings
        self._secret = settings.webhook_secret.get_secret_value().encode()
        self._unix_time = unix_time
        self._targets = targets or policy_from(settings, settings.env != "local", system_resolver)
        self._transport = transport  # tests pass httpx.MockTransport
        self._client: httpx.AsyncClient | None = None

    def breaker_key(self, message: Outgoing) -> str:
        url = message.prefs.webhook_url
        return f"webhook:{urlsplit(str(url)).netloc}" if url else "webhook"

    async def start(self) -> None:
        strict = self._targets.enforce
        self._client = httpx.AsyncClient(
            timeout=self._s.channel_timeout.total_seconds(),
            follow_redirects=False,  # a 3xx could point anywhere, the check saw only the URL
            # Pinned connections are keyed by address, not name: no reuse across names
            # (TLS verified one name per connection). No environment proxy or .netrc
            # either: the proxy would choose where the request goes, not the check.
            limits=httpx.Limits(max_keepalive_connections=0) if strict else httpx.Limits(),
            trust_env=not strict,
            transport=self._transport,
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
            "accept-encoding": "identity",
            self._s.webhook_signature_header: sign(self._secret, int(self._unix_time()), body),
            "user-agent": "taskflow-notify/1",
        }
        try:
            # One deadline for lookup, connect, send and answer: httpx's timeout is per
            # read, which a receiver dripping bytes could stretch without end.
            async with asyncio.timeout(self._s.channel_timeout.total_seconds()):
                status = await self._post(self._client, str(url), body, headers)
        except TargetRefused as exc:
            raise ChannelError(f"webhook target refused: {exc}", permanent=True) from None
        except TargetUnresolved as exc:
            raise ChannelError(f"webhook unreachable: {exc}") from None
        except TimeoutError:
            raise ChannelError("webhook timed out") from None
        except httpx.HTTPError as exc:
            raise ChannelError(f"webhook unreachable: {type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return "delivered"
        if 300 <= status < 400:
            why = f"webhook answered {status} (redirects are not followed)"
            raise ChannelError(why, permanent=True)
        permanent = 400 <= status < 500 and status not in RETRYABLE
        raise ChannelError(f"webhook answered {status}", permanent=permanent)

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
    ) -> int:
        def request() -> httpx.Request:
            return client.build_request("POST", url, content=body, headers=headers)

        addresses = await self._targets.vet(url)
        if addresses is None:
            return await self._send(client, request())
        *others, last = addresses
        for address in others:
            try:
                return await self._send(client, pin(request(), address))
            except httpx.ConnectError:
                continue  # as a dual-stack client would: the next vetted address
        return await self._send(client, pin(request(), last))

    async def _send(self, client: httpx.AsyncClient, request: httpx.Request) -> int:
        response = await client.send(request, stream=True)
        try:
            # Read a bounded part of the answer, then hang up: an endless or huge body
            # costs at most webhook_max_response_bytes.
            seen, limit = 0, self._s.webhook_max_response_bytes
            async for chunk in response.aiter_raw():
                seen += len(chunk)
                if seen >= limit:
                    break
        finally:
            await response.aclose()
        return response.status_code
