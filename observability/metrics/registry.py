"""Registries and idempotent metric families.

Each app owns a `CollectorRegistry` (no global registry, so tests never collide). Building
a metrics helper twice on one registry returns the same families instead of raising
"Duplicated timeseries", so the worker and the hub of one process can share a registry.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# Latency buckets (seconds) from 1 ms to 1 min: request handling and event processing.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Wider buckets for delays that may reach minutes (publish lag, reminder lateness).
DELAY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

_M = TypeVar("_M", Counter, Gauge, Histogram)
_families: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def new_registry() -> CollectorRegistry:
    """A registry with the standard process_*, python_gc_* and python_info families."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def family(
    registry: CollectorRegistry,
    kind: type[_M],
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    **kwargs: Any,
) -> _M:
    """Create `name` in `registry` once; later calls get the same object back."""
    with _lock:
        per_registry = _families.setdefault(registry, {})
        existing = per_registry.get(name)
        if existing is None:
            existing = kind(name, documentation, labelnames, registry=registry, **kwargs)
            per_registry[name] = existing
        if not isinstance(existing, kind):
            raise TypeError(f"metric {name} already registered as {type(existing).__name__}")
        return existing
