"""Which reminders a task has, from its due date, reminder rules, recurrence and snooze."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from events.payloads import TaskState
from reminders.domain.recurrence import occurrences, wall_clock_minus

Kind = Literal["before", "at", "due", "snooze"]

# When two rules land on one instant only one reminder fires; the more telling kind wins.
_KIND_RANK: dict[str, int] = {"snooze": 0, "due": 1, "before": 2, "at": 3}


@dataclass(frozen=True, slots=True)
class Before:
    """Remind `offset` before each due time."""

    offset: timedelta


@dataclass(frozen=True, slots=True)
class At:
    """Remind once at a fixed instant."""

    at: datetime


Rule = Before | At


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """The fields of a task that decide its reminders (a compact copy of `TaskState`)."""

    due_at: datetime | None
    timezone: str = "UTC"
    rules: tuple[Rule, ...] = ()
    recurrence: str | None = None
    snoozed_until: datetime | None = None

    @classmethod
    def from_task(cls, task: TaskState) -> TaskSpec:
        rules: list[Rule] = []
        for spec in task.reminders:
            if spec.before is not None:
                rules.append(Before(spec.before))
            elif spec.at is not None:
                rules.append(At(spec.at))
        return cls(
            due_at=task.due_at,
            timezone=task.timezone,
            rules=tuple(rules),
            recurrence=task.recurrence,
            snoozed_until=task.snoozed_until,
        )


@dataclass(frozen=True, slots=True, order=True)
class Scheduled:
    """One pending reminder: when, why, and the due time it is about."""

    at: datetime
    kind: Kind
    due_at: datetime | None = None


def _for_occurrence(spec: TaskSpec, due: datetime, remind_at_due: bool) -> list[Scheduled]:
    out = [
        Scheduled(wall_clock_minus(due, spec.timezone, rule.offset), "before", due)
        for rule in spec.rules
        if isinstance(rule, Before)
    ]
    if remind_at_due:
        out.append(Scheduled(due, "due", due))
    return out


def _occurrence_reminders(spec: TaskSpec, after: datetime, remind_at_due: bool) -> list[Scheduled]:
    """Reminders of the first occurrence (from the current due date on) still ahead of `after`."""
    if spec.due_at is None:
        return []
    if not spec.recurrence:
        found = _for_occurrence(spec, spec.due_at, remind_at_due)
        return [r for r in found if r.at > after]
    for due in occurrences(spec.recurrence, spec.due_at, spec.timezone):
        ahead = [r for r in _for_occurrence(spec, due, remind_at_due) if r.at > after]
        if ahead:
            return ahead
    return []


def plan(spec: TaskSpec, after: datetime, *, remind_at_due: bool = True) -> tuple[Scheduled, ...]:
    """The reminders strictly after `after`, soonest first, at most one per instant.

    A recurring task arms one occurrence at a time (the next one is planned when the
    current one's reminders have fired). A snooze (`snoozed_until` ahead of `after`)
    holds back every reminder up to that time and fires once then, as kind `snooze`.
    Raises `InvalidRecurrence`/`InvalidTimezone` for a rule or zone it cannot use.
    """
    found = _occurrence_reminders(spec, after, remind_at_due)
    found += [Scheduled(r.at, "at", spec.due_at) for r in spec.rules if isinstance(r, At)]
    found = [r for r in found if r.at > after]
    snooze = spec.snoozed_until
    if snooze is not None and snooze > after:
        found = [r for r in found if r.at > snooze]
        found.append(Scheduled(snooze, "snooze", spec.due_at))
    by_instant: dict[datetime, Scheduled] = {}
    for reminder in sorted(found, key=lambda r: (r.at, _KIND_RANK[r.kind])):
        by_instant.setdefault(reminder.at, reminder)
    return tuple(by_instant.values())
