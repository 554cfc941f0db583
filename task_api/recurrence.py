"""RRULE recurrence in a task's time zone: DST-correct next occurrences."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr


def parse_rule(rule: str, start: datetime, zone: ZoneInfo) -> rrule:
    """The rule anchored at `start` as wall-clock time in `zone`; raises ValueError."""
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if (
        not text
        or "\n" in text
        or "DTSTART" in text.upper()
        or not text.upper().startswith("FREQ=")
    ):
        raise ValueError("expected an RFC 5545 RRULE such as FREQ=WEEKLY;BYDAY=MO")
    # An aware dtstart makes dateutil step in local wall-clock time: 09:00 stays 09:00
    # across a DST change instead of drifting by an hour.
    parsed = rrulestr(text, dtstart=start.astimezone(zone))
    if not isinstance(parsed, rrule):
        raise ValueError("expected a single RRULE")
    return parsed


def next_occurrence(rule: str, due_at: datetime, timezone: str) -> datetime | None:
    """The first occurrence after `due_at`, in UTC; None when the rule is exhausted."""
    zone = ZoneInfo(timezone)
    local_due = due_at.astimezone(zone)
    following = parse_rule(rule, local_due, zone).after(local_due)
    return following.astimezone(UTC) if following is not None else None
