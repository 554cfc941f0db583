"""Seams of the audit store: where dead letters go and what time it is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from audit_store.records import Poison

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeadLetters(Protocol):
    """Publishes undecodable messages with their origin; returns once they are durable."""

    def send(self, poison: Sequence[Poison]) -> None: ...
