"""Rate limits per user and per client IP on requests and WebSocket handshakes, per
connection on inbound WebSocket messages: in-process GCRA counters, or the limits library's
shared storages; limits are written in its notation (`6000/minute`)."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from webapi.problems import ProblemError

log = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455 7.4.1).
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009


class TooManyRequests(ProblemError):
    status = 429
    title = "Too many requests"
    slug = "rate-limited"

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(
            f"rate limit exceeded for this {scope}; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class WebSocketPolicyViolation(Exception):
    """An inbound frame broke a limit: the connection is closed with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def parse_limit(text: str) -> RateLimitItem:
    """`"6000/minute"`, `"20 per second"`… (the limits library's notation)."""
    try:
        return parse(text)
    except ValueError:
        raise ValueError(f"not a rate limit: {text!r} (expected e.g. '6000/minute')") from None


class LocalCounters:
    """In-process GCRA (generic cell rate algorithm): one float per key, the time its next
    request is due; a budget of `amount` requests per period, all usable as a burst.

    Used instead of the limits library's MemoryStorage, whose expiry thread rescans every
    key every 10 ms while requests flow: with 5,000 live keys a hit took 158 µs of wall
    time (GIL contention) instead of 6. Here expired keys are dropped by one scan every
    few seconds, on the request path, so the cost per request stays flat.
    """

    PRUNE_EVERY = 5.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._due: dict[tuple[object, ...], float] = {}
        self._clock = clock
        self._next_prune = clock() + self.PRUNE_EVERY

    def __len__(self) -> int:
        return len(self._due)

    def acquire(self, item: RateLimitItem, *identifiers: str) -> float:
        """0.0 when the request may go (and is counted), else the seconds to wait."""
        now = self._clock()
        if now >= self._next_prune:
            self._prune(now)
        period = float(item.get_expiry())
        interval = period / item.amount
        key = (item.amount, period, *identifiers)
        due = max(self._due.get(key, now), now)
        # A key may run up to period - interval ahead of now (the burst); beyond, refuse.
        ahead = due - now - (period - interval)
        if ahead > 0:
            return ahead
        self._due[key] = due + interval
        return 0.0

    def _prune(self, now: float) -> None:
        self._due = {key: due for key, due in self._due.items() if due > now}
        self._next_prune = now + self.PRUNE_EVERY


class SharedCounters:
    """Counts in a store the limits library speaks to (e.g. `redis://`), shared by every
    process that uses it; sliding-window counters."""

    def __init__(self, storage_uri: str) -> None:
        storage = storage_from_string(storage_uri, wrap_exceptions=True)
        if not isinstance(storage, Storage):
            raise ValueError(f"rate-limit storage {storage_uri!r} must not be an async+ one")
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._failed_at = -math.inf

    def acquire(self, item: RateLimitItem, *identifiers: str) -> float:
        try:
            if self._limiter.hit(item, *identifiers):
                return 0.0
            reset_at = self._limiter.get_window_stats(item, *identifiers).reset_time
        except StorageError as exc:
            # A shared store that is down must not take the API down with it: fail open,
            # and say so once a minute.
            now = time.monotonic()
            if now - self._failed_at > 60:
                self._failed_at = now
                log.warning("rate-limit storage failed, not limiting: %s", exc.storage_error)
            return 0.0
        return max(reset_at - time.time(), 0.001)


class RateLimits:
    """The limits of one process: `user`/`ip` keep separate budgets per namespace, so a
    burst of handshakes does not eat the REST budget and the other way round."""

    def __init__(self, storage_uri: str | None = None) -> None:
        self._counters: LocalCounters | SharedCounters = (
            LocalCounters() if storage_uri is None else SharedCounters(storage_uri)
        )

    def check(self, namespace: str, limits: list[tuple[str, str, RateLimitItem]]) -> None:
        """Count one hit on each `(scope, key, limit)`; `TooManyRequests` on the first that
        is over (the remaining ones are not charged for a refused request)."""
        for scope, key, item in limits:
            wait = self._counters.acquire(item, namespace, scope, key)
            if wait > 0:
                raise TooManyRequests(scope, max(1, math.ceil(wait)))

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._counters.acquire(item, *identifiers) == 0.0


class MessageGuard:
    """Checks each inbound WebSocket message of one connection: size, then rate."""

    __slots__ = ("_limits", "_rate", "_max_bytes", "_key")  # one per socket, for hours

    def __init__(self, limits: RateLimits, rate: RateLimitItem, max_bytes: int) -> None:
        self._limits, self._rate, self._max_bytes = limits, rate, max_bytes
        self._key = uuid.uuid4().hex

    def check(self, message: str | bytes) -> None:
        size = len(message)
        # A str of n characters is at most 4n UTF-8 bytes: encode only when it matters.
        if isinstance(message, str) and size * 4 > self._max_bytes:
            size = len(message.encode())
        if size > self._max_bytes:
            raise WebSocketPolicyViolation(
                MESSAGE_TOO_BIG, f"messages are limited to {self._max_bytes} bytes"
            )
        if not self._limits.hit(self._rate, "ws-message", self._key):
            raise WebSocketPolicyViolation(
                POLICY_VIOLATION, f"too many messages (limit {self._rate})"
            )
