"""Circuit breakers: after `threshold` consecutive failures a key opens for `reset`, then
lets one probe through (half-open); its success closes the key, its failure reopens it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from notify_ws.exceptions import CircuitOpen


class State(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass
class Breaker:
    key: str
    threshold: int
    reset: float
    monotonic: Callable[[], float] = time.monotonic
    state: State = State.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = field(default=False)

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        return max(0.0, self.opened_at + self.reset - self.monotonic())

    def before_call(self) -> None:
        """Raise `CircuitOpen` unless a call may go ahead now."""
        if self.state is State.OPEN:
            if self.retry_in() > 0:
                raise CircuitOpen(f"circuit {self.key} open")
            self.state = State.HALF_OPEN
            self.probing = False
        if self.state is State.HALF_OPEN:
            if self.probing:
                raise CircuitOpen(f"circuit {self.key} half-open, probe in flight")
            self.probing = True

    def success(self) -> None:
        self.state, self.failures, self.probing = State.CLOSED, 0, False

    def failure(self) -> None:
        self.failures += 1
        if self.state is State.HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at, self.probing = State.OPEN, self.monotonic(), False


class Breakers:
    """One breaker per key, created on first use; `on_change` reports state for metrics."""

    def __init__(
        self,
        threshold: int,
        reset: float,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State], None] | None = None,
    ) -> None:
        self._threshold, self._reset, self._monotonic = threshold, reset, monotonic
        self._on_change = on_change
        self._breakers: dict[str, Breaker] = {}

    def get(self, key: str) -> Breaker:
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = Breaker(key, self._threshold, self._reset, self._monotonic)
            self._breakers[key] = breaker
        return breaker

    def report(self, breaker: Breaker) -> None:
        if self._on_change is not None:
            self._on_change(breaker.key, breaker.state)

    def states(self) -> dict[str, State]:
        return {key: b.state for key, b in self._breakers.items()}
