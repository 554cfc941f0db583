"""Signing keys of a JWKS URL, fetched in a worker thread and kept in memory, so token
checks never wait on the network except once for a key id not seen before."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientError

log = logging.getLogger(__name__)


class JwksKeys:
    """Keys by `kid`; a set older than `max_age` is refreshed in the background, an unknown
    `kid` waits for one refresh (key rotation), and fetches are at least
    `min_refresh_interval` apart whatever tokens arrive (a flood of made-up kids cannot
    turn into a flood of requests to the identity provider)."""

    def __init__(
        self,
        url: str,
        *,
        max_age: float = 300.0,
        min_refresh_interval: float = 10.0,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # PyJWKClient's own cache is off: this class decides when to fetch.
        self._client = PyJWKClient(url, cache_jwk_set=False, cache_keys=False, timeout=timeout)
        self.url = url
        self._max_age, self._min_interval = max_age, min_refresh_interval
        self._monotonic = monotonic
        self._keys: dict[str, Any] = {}
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._fetch: asyncio.Task[None] | None = None

    def cached(self, kid: str) -> Any | None:
        """The key for `kid` if it is already known (no I/O)."""
        return self._keys.get(kid)

    async def key(self, kid: str) -> Any | None:
        """The key for `kid`, fetching the set first if the id is unknown."""
        key = self._keys.get(kid)
        if key is None:
            await self.refresh()
            return self._keys.get(kid)
        if self._monotonic() - self._fetched_at > self._max_age:
            self._start_fetch()  # serve the known key now; the new set comes soon
        return key

    async def refresh(self) -> None:
        """Fetch the set unless a fetch is running (then wait for it) or one ran recently."""
        self._start_fetch()
        if self._fetch is not None:
            await asyncio.shield(self._fetch)

    def prefetch(self) -> None:
        """Start a fetch in the background (needs a running event loop)."""
        self._start_fetch()

    def _start_fetch(self) -> None:
        if self._fetch is not None and not self._fetch.done():
            return
        now = self._monotonic()
        if now - self._attempted_at < self._min_interval:
            self._fetch = None
            return
        self._attempted_at = now
        self._fetch = asyncio.get_running_loop().create_task(self._load(), name="jwks-fetch")

    async def _load(self) -> None:
        try:
            # PyJWKClient uses blocking urllib: keep it off the event loop.
            keys = await asyncio.to_thread(self._client.get_signing_keys, True)
        except PyJWKClientError as exc:
            log.warning("could not fetch the JWKS from %s: %s", self.url, exc)
            return
        self._keys = {key.key_id: key.key for key in keys if key.key_id}
        self._fetched_at = self._monotonic()
        log.info("loaded %d signing keys from %s", len(self._keys), self.url)
