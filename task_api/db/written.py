"""The outbox rows one transaction wrote, kept so the relay can publish them at commit.

A writer that knows its row (the one-statement writers in `task_api.db.writes`) records
it here with the ids of the older unpublished events of the same key that its statement
saw. After the commit the route hands the record to the relay (`OutboxRelay.hand_off`),
which produces those events at once instead of claiming them back from the table: at one
change at a time that is three round trips and a wake-up saved per change, and under load
the event no longer waits for the relay's turn on the event loop.

A row written any other way (the ORM's `outbox.enqueue`) only sets `unrecorded`: the
relay claims it as before. A transaction that rolls back hands nothing over: its record
goes with the `collecting()` block that held it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from task_api.db.relay_store import PendingEvent


@dataclass(frozen=True, slots=True)
class WrittenEvent:
    event: PendingEvent
    # Unpublished rows of the same key older than this one, as the writing statement saw
    # them: the event may go ahead of the relay only behind events already on their way.
    older: tuple[int, ...] = ()


@dataclass(slots=True)
class Written:
    events: list[WrittenEvent] = field(default_factory=list)
    unrecorded: bool = False


_current: ContextVar[Written | None] = ContextVar("taskflow_outbox_written", default=None)


@contextmanager
def collecting() -> Iterator[Written]:
    """Record the outbox rows written inside the block (by this task only)."""
    written = Written()
    token = _current.set(written)
    try:
        yield written
    finally:
        _current.reset(token)


def record(event: PendingEvent, older: tuple[int, ...] = ()) -> None:
    """Note a row the current `collecting()` block wrote (nothing outside one)."""
    written = _current.get()
    if written is not None:
        written.events.append(WrittenEvent(event, older))


def record_unrecorded() -> None:
    """Note that a row was written that the relay must claim from the table."""
    written = _current.get()
    if written is not None:
        written.unrecorded = True
