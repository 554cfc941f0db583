"""Timer state survives the compact snapshot format unchanged."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest

from pipelines.reminders.snapshot import pack, unpack
from reminders.domain.catchup import CatchUpPolicy
from reminders.domain.timers import apply_event, fire_due
from tests.unit.reminders.factories import T0, TRACEPARENT, payload


def test_pack_unpack_round_trip_through_pickle() -> None:
    task = payload(
        "task.snoozed",
        due_at=T0 + timedelta(days=1),
        timezone="Europe/Berlin",
        before=(timedelta(days=1, minutes=5),),
        at=(T0 + timedelta(hours=3),),
        recurrence="FREQ=WEEKLY;BYDAY=MO",
        snoozed_until=T0 + timedelta(hours=2),
    )
    state = apply_event(None, "task.snoozed", task, TRACEPARENT)
    assert state is not None
    state, fired, _ = fire_due(
        state, T0 + timedelta(hours=2), T0 + timedelta(hours=2), CatchUpPolicy()
    )
    assert fired and state.fired_through is not None and state.pending
    assert unpack(pickle.loads(pickle.dumps(pack(state)))) == state  # noqa: S301 - our own bytes


def test_tombstone_round_trip_and_unknown_format_refused() -> None:
    state = apply_event(None, "task.deleted", payload("task.deleted", due_at=None))
    assert state is not None
    assert unpack(pack(state)) == state
    with pytest.raises(ValueError, match="format"):
        unpack((99, *pack(state)[1:]))
