"""Per-task timer transitions: re-arm, cancel, stale versions, firing, catch-up."""

from __future__ import annotations

from datetime import timedelta

from reminders.domain.catchup import CatchUpPolicy
from reminders.domain.ids import reminder_id
from reminders.domain.timers import TaskTimers, apply_event, fire_due
from tests.unit.reminders.factories import T0, TASK, payload

POLICY = CatchUpPolicy(grace=timedelta(minutes=5), max_age=timedelta(days=1))
DUE = T0 + timedelta(hours=1)


def created(**kw: object) -> TaskTimers:
    state = apply_event(None, "task.created", payload("task.created", due_at=DUE, **kw))
    assert state is not None
    return state


def at(state: TaskTimers) -> list[object]:
    return [(r.at, r.kind) for r in state.pending]


def test_create_arms_before_and_due() -> None:
    state = created(before=(timedelta(minutes=15),))
    assert at(state) == [(DUE - timedelta(minutes=15), "before"), (DUE, "due")]
    assert state.task_id == str(TASK) and state.user_id == "alice" and state.version == 1


def test_stale_and_duplicate_versions_are_ignored() -> None:
    state = apply_event(created(), "task.updated", payload("task.updated", version=3, due_at=DUE))
    assert state is not None
    for version in (2, 3):
        stale = payload("task.updated", version=version, due_at=DUE + timedelta(days=1))
        assert apply_event(state, "task.updated", stale) is None


def test_due_move_rearms() -> None:
    later = DUE + timedelta(days=1)
    state = apply_event(created(), "task.updated", payload("task.updated", version=2, due_at=later))
    assert state is not None and at(state) == [(later, "due")]


def test_completion_and_deletion_cancel_but_keep_the_version() -> None:
    done = payload("task.completed", version=2, due_at=DUE, status="completed", completed_at=T0)
    completed = apply_event(created(), "task.completed", done)
    assert completed is not None and completed.pending == () and not completed.active
    deleted = apply_event(created(), "task.deleted", payload("task.deleted", version=2, due_at=DUE))
    assert deleted is not None and deleted.pending == () and deleted.deleted
    assert apply_event(deleted, "task.updated", payload("task.updated", version=2)) is None


def test_reopen_rearms_future_reminders() -> None:
    done = payload("task.completed", version=2, due_at=DUE, status="completed", completed_at=T0)
    completed = apply_event(created(), "task.completed", done)
    reopened = apply_event(
        completed, "task.reopened", payload("task.reopened", version=3, due_at=DUE)
    )
    assert reopened is not None and at(reopened) == [(DUE, "due")]


def test_recurring_completion_rearms_from_the_advanced_due_date() -> None:
    state = created(recurrence="FREQ=DAILY", before=(timedelta(minutes=10),))
    nxt = DUE + timedelta(days=1)
    done = payload(
        "task.completed",
        version=2,
        due_at=nxt,
        recurrence="FREQ=DAILY",
        before=(timedelta(minutes=10),),
        completed_occurrence_due_at=DUE,
        updated_at=DUE - timedelta(minutes=30),
    )
    after = apply_event(state, "task.completed", done)
    assert after is not None and at(after) == [
        (nxt - timedelta(minutes=10), "before"),
        (nxt, "due"),
    ]


def test_a_change_does_not_create_reminders_in_its_own_past() -> None:
    state = created()
    change = payload(
        "task.updated",
        version=2,
        due_at=DUE,
        before=(timedelta(hours=2),),
        updated_at=T0 + timedelta(minutes=30),
    )
    after = apply_event(state, "task.updated", change)  # T0-1h would be before the change
    assert after is not None and at(after) == [(DUE, "due")]


def test_overdue_armed_reminder_survives_an_unrelated_change_after_downtime() -> None:
    state = created(before=(timedelta(minutes=30),))
    # Renamed at DUE-10min while the flow was down: the DUE-30min reminder never fired.
    rename = payload(
        "task.updated",
        version=2,
        due_at=DUE,
        before=(timedelta(minutes=30),),
        updated_at=DUE - timedelta(minutes=10),
        title="Pay the rent",
    )
    after = apply_event(state, "task.updated", rename)
    assert after is not None
    assert at(after) == [(DUE - timedelta(minutes=30), "before"), (DUE, "due")]
    assert after.title == "Pay the rent"


def test_fire_pops_due_reminders_with_deterministic_ids() -> None:
    state = created(before=(timedelta(minutes=15),))
    when = DUE - timedelta(minutes=15)
    after, fired, dropped = fire_due(state, when, when + timedelta(milliseconds=20), POLICY)
    assert [f.reminder_id for f in fired] == [reminder_id(str(TASK), when, 1)]
    assert fired[0].kind == "before" and not fired[0].missed and dropped == []
    assert at(after) == [(DUE, "due")] and after.fired_through == when
    again, nothing, _ = fire_due(after, when, when, POLICY)
    assert nothing == [] and again == after


def test_fired_reminders_are_not_rearmed_by_a_later_change() -> None:
    state = created()
    after, _, _ = fire_due(state, DUE, DUE, POLICY)
    # A change whose updated_at lags the fire (e.g. processed late) must not re-fire DUE.
    change = payload("task.updated", version=2, due_at=DUE, updated_at=DUE - timedelta(minutes=1))
    changed = apply_event(after, "task.updated", change)
    assert changed is not None and changed.pending == ()


def test_catch_up_fire_late_missed_or_dropped() -> None:
    state = created(
        before=(timedelta(days=2), timedelta(minutes=10)),
        created_at=T0 - timedelta(days=3),
        updated_at=T0 - timedelta(days=3),
    )
    now = DUE + timedelta(minutes=3)
    _, fired, dropped = fire_due(state, now, now, POLICY)
    assert [(f.kind, f.missed) for f in fired] == [("before", True), ("due", False)]
    assert [d.at for d in dropped] == [DUE - timedelta(days=2)]


def test_recurring_task_arms_next_occurrence_after_firing() -> None:
    state = created(recurrence="FREQ=WEEKLY")
    after, fired, _ = fire_due(state, DUE, DUE, POLICY)
    assert len(fired) == 1 and at(after) == [(DUE + timedelta(weeks=1), "due")]


def test_bad_recurrence_or_zone_degrades_instead_of_failing() -> None:
    assert at(created(recurrence="FREQ=NEVER")) == [(DUE, "due")]
    assert at(created(timezone="Nowhere/Special", recurrence="FREQ=DAILY")) == [(DUE, "due")]


def test_snooze_event_moves_the_next_reminder() -> None:
    state = created(before=(timedelta(minutes=15),))
    until = DUE + timedelta(minutes=30)
    snoozed = apply_event(
        state,
        "task.snoozed",
        payload(
            "task.snoozed",
            version=2,
            due_at=DUE,
            before=(timedelta(minutes=15),),
            snoozed_until=until,
            updated_at=DUE - timedelta(minutes=20),
        ),
    )
    assert snoozed is not None and at(snoozed) == [(until, "snooze")]
