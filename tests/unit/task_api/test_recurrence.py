"""What completing a recurring task moves `due_at` to: the shared RRULE domain function."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reminders.domain.recurrence import next_occurrence


@pytest.mark.parametrize(
    ("rule", "due", "zone", "expected"),
    [
        # 09:00 Berlin stays 09:00 across spring forward (CET+1 -> CEST+2).
        (
            "FREQ=DAILY",
            datetime(2026, 3, 28, 8, tzinfo=UTC),
            "Europe/Berlin",
            datetime(2026, 3, 29, 7, tzinfo=UTC),
        ),
        # ... and across fall back.
        (
            "FREQ=DAILY",
            datetime(2026, 10, 24, 7, tzinfo=UTC),
            "Europe/Berlin",
            datetime(2026, 10, 25, 8, tzinfo=UTC),
        ),
        # New York changes on another date: weekly Monday 08:30 local.
        (
            "FREQ=WEEKLY;BYDAY=MO",
            datetime(2026, 3, 2, 13, 30, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 3, 9, 12, 30, tzinfo=UTC),
        ),
        # Last day of the month.
        (
            "FREQ=MONTHLY;BYMONTHDAY=-1",
            datetime(2026, 1, 31, 12, tzinfo=UTC),
            "UTC",
            datetime(2026, 2, 28, 12, tzinfo=UTC),
        ),
        # Leap day: the next Feb 29 is in 2028.
        (
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
            datetime(2024, 2, 29, 9, tzinfo=UTC),
            "UTC",
            datetime(2028, 2, 29, 9, tzinfo=UTC),
        ),
        (
            "RRULE:FREQ=HOURLY;INTERVAL=6",
            datetime(2026, 1, 1, tzinfo=UTC),
            "UTC",
            datetime(2026, 1, 1, 6, tzinfo=UTC),
        ),
    ],
)
def test_next_occurrence(rule: str, due: datetime, zone: str, expected: datetime) -> None:
    assert next_occurrence(rule, due, zone) == expected


def test_exhausted_rule_has_no_next() -> None:
    due = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_occurrence("FREQ=DAILY;COUNT=1", due, "UTC") is None
    assert next_occurrence("FREQ=DAILY;UNTIL=20260101T120000Z", due, "UTC") is None


@pytest.mark.parametrize(
    "rule",
    [
        "",
        "DAILY",
        "FREQ=NEVER",
        "FREQ=DAILY;BYDAY=XX",
    ],
)
def test_bad_rules_raise_value_error(rule: str) -> None:
    with pytest.raises(ValueError):
        next_occurrence(rule, datetime(2026, 1, 1, tzinfo=UTC), "UTC")
