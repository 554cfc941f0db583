"""W3C trace context through Kafka headers; swap for `observability.propagation` later."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter

tracer = trace.get_tracer("notify_ws")
HeaderList = Sequence[tuple[str, Any]]


class _Get(Getter[HeaderList]):
    def get(self, carrier: HeaderList, key: str) -> list[str] | None:
        found = [
            v.decode() if isinstance(v, bytes) else str(v)
            for k, v in carrier
            if k.lower() == key and v is not None
        ]
        return found or None

    def keys(self, carrier: HeaderList) -> list[str]:
        return [k for k, _ in carrier]


class _Set(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier.append((key, value.encode()))


def extract(headers: HeaderList | None) -> context.Context:
    return propagate.extract(list(headers or ()), getter=_Get())


def inject(headers: list[tuple[str, bytes]]) -> None:
    propagate.inject(headers, setter=_Set())


def current_traceparent() -> str | None:
    carrier: list[tuple[str, bytes]] = []
    inject(carrier)
    for key, value in carrier:
        if key == "traceparent":
            return value.decode()
    return None


def context_of(traceparent: str | None) -> context.Context:
    return propagate.extract({"traceparent": traceparent} if traceparent else {})
