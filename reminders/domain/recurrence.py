"""RRULE recurrence in a task's time zone.

Occurrences are floating local times: a 09:00 weekly task stays at 09:00 wall-clock time
across DST changes. dateutil steps the rule on datetimes that carry the task's zone, so the
wall-clock fields stay fixed and the UTC instant follows the zone's offset on each date.
A wall time that does not exist (spring-forward gap) resolves with `fold=0`, i.e. it moves
forward by the gap (02:30 -> 03:30 in Europe/Berlin); an ambiguous one (fall-back) takes
its first instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rruleset, rrulestr

from reminders.exceptions import InvalidRecurrence, InvalidTimezone

# Bounds the search for an occurrence with a future reminder, so a rule that never yields
# (or a due date decades in the past) cannot spin the dataflow.
MAX_OCCURRENCE_STEPS = 5000


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; raises `InvalidTimezone`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimezone(f"unknown time zone {name!r}") from exc


def to_utc(local: datetime) -> datetime:
    """A zone-aware datetime as UTC (gap times move forward, ambiguous ones take fold=0)."""
    return local.astimezone(UTC)


def wall_clock_minus(instant: datetime, tz_name: str, offset: timedelta) -> datetime:
    """`instant - offset`, with whole days counted in local wall-clock time.

    "1 day before 09:00" is 09:00 the previous day even across a DST change (23 or 25
    real hours); the sub-day rest of the offset is absolute time.
    """
    days = offset.days
    rest = offset - timedelta(days=days)
    if days:
        tz = zone(tz_name)
        local = instant.astimezone(tz).replace(tzinfo=None) - timedelta(days=days)
        instant = to_utc(local.replace(tzinfo=tz))
    return instant - rest


def _strip_prefix(rule: str) -> str:
    text = rule.strip()
    return text[len("RRULE:") :] if text.upper().startswith("RRULE:") else text


@lru_cache(maxsize=4096)
def _parse(rule: str, dtstart: datetime) -> rrule | rruleset:
    try:
        parsed = rrulestr(_strip_prefix(rule), dtstart=dtstart)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidRecurrence(f"invalid RRULE {rule!r}: {exc}") from exc
    if not isinstance(parsed, rrule | rruleset):
        raise InvalidRecurrence(f"invalid RRULE {rule!r}")
    return parsed


def validate(rule: str, tz_name: str = "UTC") -> None:
    """Raise `InvalidRecurrence` / `InvalidTimezone` if the rule cannot be used."""
    _parse(rule, datetime(2000, 1, 1, tzinfo=zone(tz_name)))


def occurrences(rule: str, due_at: datetime, tz_name: str) -> Iterator[datetime]:
    """`due_at` (the current occurrence) then the following ones, as UTC instants."""
    tz = zone(tz_name)
    local_due = due_at.astimezone(tz)
    yield to_utc(local_due)
    series = _parse(rule, local_due)
    for occurrence in series.xafter(local_due, count=MAX_OCCURRENCE_STEPS):
        yield to_utc(occurrence)


def next_occurrence(
    rule: str, due_at: datetime, tz_name: str, after: datetime | None = None
) -> datetime | None:
    """The first occurrence of the series anchored at `due_at` strictly after `after`.

    With `after` omitted it is the occurrence following `due_at`. None when the rule has
    ended (COUNT/UNTIL).
    """
    threshold = due_at if after is None else after
    if threshold.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    for occurrence in occurrences(rule, due_at, tz_name):
        if occurrence > threshold:
            return occurrence
    return None
