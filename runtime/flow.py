"""The skeleton every dataflow process runs through: logging → tracing → GC → metrics
endpoint (with liveness at /healthz) → SIGTERM handling, in one call,
`start_flow_process(spec)`.

Liveness: the flow's sources take a heartbeat per partition (`partition_heartbeat`) and
beat it on every poll; the metrics port's /healthz answers 503 naming a partition that has
not been polled for `max_silence` (its worker is stuck in a step or a sink).

A flow package calls it when `bytewax.run` looks its `flow` attribute up (in the main
thread, before Bytewax starts its workers), never at import, so tests that import a flow
factory start nothing.

SIGTERM: Bytewax 0.21 only turns SIGINT into a stop (its main thread polls Python's signal
handlers and, on an exception, tells the workers to stop after their current step). A
process without a SIGTERM handler dies at once, or, as PID 1 in a container, ignores
SIGTERM and is killed after the grace period. Here SIGTERM raises `SystemExit(0)` in the
main thread: the workers stop, the process exits 0 within a fraction of a second, and the
next run resumes from the last completed snapshot (epoch), replaying at most one snapshot
interval into idempotent sinks. With one worker Bytewax reports the stop as a
`BytewaxRuntimeError("signal received")`; that too exits 0 once a stop was asked for.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType, TracebackType

from prometheus_client import REGISTRY, CollectorRegistry

from observability.logs import setup_logging
from observability.metrics.serve import MetricsServer, serve_metrics
from observability.tracing import force_flush, setup_tracing
from runtime.heartbeat import Heartbeat, Heartbeats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowProcess:
    """One dataflow process: its name, its metrics endpoint and its tuning."""

    name: str  # service.name in traces, `service` in logs, the Prometheus job
    metrics_port: int = 0  # 0: no endpoint
    metrics_host: str = "127.0.0.1"
    # gc.set_threshold(...) for flows holding many long-lived objects (timers).
    gc_thresholds: tuple[int, int, int] | None = None
    # Adds the flow's own families to the process registry before it is served.
    add_metrics: Callable[[CollectorRegistry], None] | None = None
    # Liveness: a source partition not polled for this long makes /healthz fail.
    max_silence: timedelta = timedelta(minutes=2)


@dataclass
class RunningFlow:
    """What `start_flow_process` set up; `stopping` is set once SIGTERM arrived."""

    name: str
    metrics: MetricsServer | None
    max_silence: timedelta = timedelta(minutes=2)
    heartbeats: Heartbeats = field(default_factory=Heartbeats)
    stopping: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_running: RunningFlow | None = None


def start_flow_process(spec: FlowProcess) -> RunningFlow:
    """Wire the process for `spec` once (later calls return the same); main thread only
    for the SIGTERM handler (elsewhere it is skipped with a warning)."""
    global _running
    with _lock:
        if _running is not None:
            if _running.name != spec.name:
                raise RuntimeError(f"process already runs {_running.name!r}, not {spec.name!r}")
            return _running
        setup_logging(spec.name)
        setup_tracing(spec.name)
        if spec.gc_thresholds is not None:
            gc.set_threshold(*spec.gc_thresholds)
        heartbeats = Heartbeats()
        metrics = _serve_metrics(spec, heartbeats)
        running = RunningFlow(spec.name, metrics, spec.max_silence, heartbeats)
        _stop_on_sigterm(running)
        _running = running
    where = f"{spec.metrics_host}:{running.metrics.port}" if running.metrics else "off"
    log.info("flow process %s starting (metrics %s)", spec.name, where)
    return running


def partition_heartbeat(step_id: str, partition: str) -> Heartbeat | None:
    """The heartbeat a source partition beats on each poll, in a flow process started by
    `start_flow_process`; None elsewhere (tests running a flow factory)."""
    with _lock:
        running = _running
    if running is None:
        return None
    name = f"{step_id}/{partition}"
    # Armed by its first beat: a partition held back on resume is not judged before.
    return running.heartbeats.add(name, running.max_silence, replace=True)


def new_io_loop() -> asyncio.AbstractEventLoop:
    """A private event loop for a sink partition's database I/O (asyncpg binds its pool
    to the loop that made it)."""
    # uvloop, as in the services: on the stdlib selector loop, its own Python machinery
    # (_run_once, socket transports, call_soon_threadsafe, the threadsafe futures) was a
    # large share of the flows' CPU per change under py-spy.
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve_metrics(spec: FlowProcess, heartbeats: Heartbeats) -> MetricsServer | None:
    """The default registry, not `new_registry()`: Bytewax's own gauges (consumer lag)
    and the flows' module-level counters live there; it already carries process_*,
    python_gc_* and python_info for this process."""
    registry = REGISTRY
    if spec.add_metrics is not None:
        spec.add_metrics(registry)
    if not spec.metrics_port:
        return None
    return serve_metrics(registry, spec.metrics_host, spec.metrics_port, heartbeats.stale)


def _stop_on_sigterm(running: RunningFlow) -> None:
    if threading.current_thread() is not threading.main_thread():
        log.warning("not in the main thread: SIGTERM keeps its default action")
        return

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        if running.stopping.is_set():
            return  # a second SIGTERM while the first is being handled
        running.stopping.set()
        log.info("SIGTERM: stopping %s; it resumes from its last snapshot", running.name)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    previous = sys.excepthook

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        # One worker: Bytewax replaces our SystemExit by "signal received". Asked to stop,
        # that is a clean stop, not a crash: exit 0 (flushing what atexit would have).
        if running.stopping.is_set() and issubclass(kind, KeyboardInterrupt | RuntimeError):
            log.info("%s stopped (%s)", running.name, value)
            force_flush()
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        previous(kind, value, tb)

    sys.excepthook = excepthook
