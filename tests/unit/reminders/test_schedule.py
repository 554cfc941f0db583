"""Which reminders a task has: before/at/due, dedup, snooze, recurrence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reminders.domain.schedule import At, Before, Scheduled, TaskSpec, plan

DUE = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
EARLY = DUE - timedelta(days=2)


def times(spec: TaskSpec, after: datetime = EARLY, **kw: bool) -> list[tuple[datetime, str]]:
    return [(r.at, r.kind) for r in plan(spec, after, **kw)]


def test_before_at_and_due_reminders_soonest_first() -> None:
    at = DUE - timedelta(hours=3)
    spec = TaskSpec(DUE, rules=(Before(timedelta(minutes=15)), At(at)))
    assert times(spec) == [
        (at, "at"),
        (DUE - timedelta(minutes=15), "before"),
        (DUE, "due"),
    ]
    assert plan(spec, EARLY)[1] == Scheduled(DUE - timedelta(minutes=15), "before", DUE)


def test_due_reminder_can_be_switched_off_and_no_due_date_means_only_at() -> None:
    spec = TaskSpec(DUE, rules=(Before(timedelta(minutes=15)),))
    assert times(spec, remind_at_due=False) == [(DUE - timedelta(minutes=15), "before")]
    at = DUE + timedelta(hours=1)
    assert times(TaskSpec(None, rules=(Before(timedelta(hours=1)), At(at)))) == [(at, "at")]


def test_one_reminder_per_instant() -> None:
    spec = TaskSpec(DUE, rules=(Before(timedelta(0)), At(DUE)))
    assert times(spec) == [(DUE, "due")]


def test_only_reminders_strictly_after_the_threshold() -> None:
    spec = TaskSpec(DUE, rules=(Before(timedelta(hours=1)),))
    assert times(spec, after=DUE - timedelta(hours=1)) == [(DUE, "due")]
    assert times(spec, after=DUE) == []


def test_snooze_holds_back_earlier_reminders_and_fires_once_at_its_time() -> None:
    snooze = DUE - timedelta(minutes=20)
    spec = TaskSpec(
        DUE,
        rules=(Before(timedelta(hours=1)), Before(timedelta(minutes=30))),
        snoozed_until=snooze,
    )
    assert times(spec) == [(snooze, "snooze"), (DUE, "due")]


def test_snooze_after_every_reminder_still_reminds_then() -> None:
    snooze = DUE + timedelta(hours=1)
    spec = TaskSpec(DUE, snoozed_until=snooze)
    assert times(spec, after=DUE) == [(snooze, "snooze")]


def test_past_snooze_no_longer_applies() -> None:
    spec = TaskSpec(DUE, snoozed_until=DUE - timedelta(hours=2))
    assert times(spec, after=DUE - timedelta(hours=1)) == [(DUE, "due")]


def test_recurring_task_arms_the_first_occurrence_still_ahead() -> None:
    spec = TaskSpec(DUE, rules=(Before(timedelta(minutes=10)),), recurrence="FREQ=DAILY")
    assert times(spec, after=DUE - timedelta(minutes=5)) == [(DUE, "due")]
    tomorrow = DUE + timedelta(days=1)
    assert times(spec, after=DUE) == [
        (tomorrow - timedelta(minutes=10), "before"),
        (tomorrow, "due"),
    ]
    assert times(spec, after=DUE + timedelta(days=3, hours=1))[0][0] == DUE + timedelta(
        days=4, minutes=-10
    )


def test_recurring_in_local_time_zone_across_dst() -> None:
    due = datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # Saturday 09:00 CET
    spec = TaskSpec(due, timezone="Europe/Berlin", recurrence="FREQ=DAILY")
    assert times(spec, after=due) == [(datetime(2026, 3, 29, 7, 0, tzinfo=UTC), "due")]
