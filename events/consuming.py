"""Polling helpers shared by every confluent-kafka consumer loop of ours."""

from __future__ import annotations

from typing import Any


def poll_batch(consumer: Any, most: int, timeout: float) -> list[Any]:
    """Wait up to `timeout` for the first message, then take what is already queued:
    `consume(n, t)` alone would hold a lone message until `t` ran out."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, 0)] if most > 1 else [first]
