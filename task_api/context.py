"""What request handlers need from the composition root, held on the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from quart import current_app

from task_api.db.written import Written
from task_api.services import EventSink
from webapi.auth import TokenVerifier

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TaskContext:
    sink: EventSink
    tokens: TokenVerifier
    idempotency_ttl: timedelta
    clock: Clock = utc_now
    # Called after every commit that wrote an event, with what it wrote: the relay
    # publishes right away.
    on_commit: Callable[[Written], None] = lambda _written: None
    # With no relay in this process, NOTIFY the relays elsewhere (LISTEN taskflow_outbox).
    notify_relays: bool = False


def task_context() -> TaskContext:
    ctx: TaskContext = current_app.extensions["task_api"]
    return ctx
