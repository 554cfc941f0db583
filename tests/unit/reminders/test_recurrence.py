"""RRULE occurrences in a task's zone: floating wall-clock times, DST, month ends, leap days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest

from reminders.domain.recurrence import next_occurrence, occurrences, validate, wall_clock_minus
from reminders.exceptions import InvalidRecurrence, InvalidTimezone


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_daily_0900_berlin_keeps_wall_clock_across_spring_forward() -> None:
    # 09:00 CET is 08:00 UTC; after 2026-03-29 09:00 CEST is 07:00 UTC.
    series = list(islice(occurrences("FREQ=DAILY", utc(2026, 3, 27, 8), "Europe/Berlin"), 4))
    assert series == [
        utc(2026, 3, 27, 8),
        utc(2026, 3, 28, 8),
        utc(2026, 3, 29, 7),
        utc(2026, 3, 30, 7),
    ]


def test_daily_0900_berlin_across_fall_back() -> None:
    due = utc(2026, 10, 24, 7)  # 09:00 CEST
    assert next_occurrence("FREQ=DAILY", due, "Europe/Berlin") == utc(2026, 10, 25, 8)


def test_weekly_new_york_across_both_transitions() -> None:
    # Monday 09:00 EST (14:00 UTC) -> after 2026-03-08 it is 09:00 EDT (13:00 UTC).
    due = utc(2026, 3, 2, 14)
    assert next_occurrence("FREQ=WEEKLY;BYDAY=MO", due, "America/New_York") == utc(2026, 3, 9, 13)
    autumn = utc(2026, 10, 26, 13)  # Monday 09:00 EDT; EST from 2026-11-01
    assert next_occurrence("FREQ=WEEKLY;BYDAY=MO", autumn, "America/New_York") == utc(
        2026, 11, 2, 14
    )


def test_wall_time_inside_the_spring_gap_moves_forward() -> None:
    due = utc(2026, 3, 28, 1, 30)  # 02:30 CET; 02:30 does not exist on 2026-03-29
    assert next_occurrence("FREQ=DAILY", due, "Europe/Berlin") == utc(
        2026, 3, 29, 1, 30
    )  # 03:30 CEST


def test_ambiguous_fall_back_time_takes_first_instance() -> None:
    due = utc(2026, 10, 24, 0, 30)  # 02:30 CEST; 02:30 happens twice on 2026-10-25
    assert next_occurrence("FREQ=DAILY", due, "Europe/Berlin") == utc(2026, 10, 25, 0, 30)


def test_last_day_of_month() -> None:
    due = utc(2026, 1, 31, 12)
    series = list(islice(occurrences("FREQ=MONTHLY;BYMONTHDAY=-1", due, "UTC"), 4))
    assert series == [
        utc(2026, 1, 31, 12),
        utc(2026, 2, 28, 12),
        utc(2026, 3, 31, 12),
        utc(2026, 4, 30, 12),
    ]


def test_monthly_on_the_31st_skips_short_months_as_rfc5545_says() -> None:
    assert next_occurrence("FREQ=MONTHLY", utc(2026, 1, 31, 12), "UTC") == utc(2026, 3, 31, 12)


def test_leap_day_yearly_and_leap_year_month_end() -> None:
    assert next_occurrence("FREQ=YEARLY", utc(2028, 2, 29, 9), "UTC") == utc(2032, 2, 29, 9)
    rule = "FREQ=MONTHLY;BYMONTHDAY=-1"
    assert next_occurrence(rule, utc(2028, 1, 31, 9), "UTC") == utc(2028, 2, 29, 9)


def test_after_skips_past_occurrences() -> None:
    due = utc(2026, 1, 5, 9)
    assert next_occurrence("FREQ=DAILY", due, "UTC", after=utc(2026, 1, 9, 9)) == utc(
        2026, 1, 10, 9
    )


def test_count_and_until_end_the_series() -> None:
    due = utc(2026, 1, 5, 9)
    assert next_occurrence("FREQ=DAILY;COUNT=2", due, "UTC", after=utc(2026, 1, 6, 9)) is None
    rule = "RRULE:FREQ=DAILY;UNTIL=20260107T090000Z"
    assert next_occurrence(rule, due, "Europe/Berlin", after=utc(2026, 1, 6, 9)) == utc(
        2026, 1, 7, 9
    )
    assert next_occurrence(rule, due, "Europe/Berlin", after=utc(2026, 1, 7, 9)) is None


def test_invalid_rule_and_zone_raise_domain_errors() -> None:
    with pytest.raises(InvalidRecurrence):
        validate("FREQ=SOMETIMES")
    with pytest.raises(InvalidTimezone):
        validate("FREQ=DAILY", "Mars/Olympus")
    with pytest.raises(ValueError, match="aware"):
        next_occurrence("FREQ=DAILY", utc(2026, 1, 5), "UTC", after=datetime(2026, 1, 6))  # noqa: DTZ001


def test_whole_days_before_count_in_wall_clock_time() -> None:
    due = utc(2026, 3, 30, 7)  # Monday 09:00 CEST
    # One day before is Sunday 09:00 CEST (07:00 UTC): 24 wall-clock hours, 24 real hours.
    assert wall_clock_minus(due, "Europe/Berlin", timedelta(days=1)) == utc(2026, 3, 29, 7)
    # Two days before is Saturday 09:00 CET (08:00 UTC): only 47 real hours.
    assert wall_clock_minus(due, "Europe/Berlin", timedelta(days=2)) == utc(2026, 3, 28, 8)
    # Sub-day offsets are absolute time.
    assert wall_clock_minus(due, "Europe/Berlin", timedelta(hours=30)) == utc(2026, 3, 29, 1)
    assert wall_clock_minus(due, "Europe/Berlin", timedelta(days=1, minutes=30)) == utc(
        2026, 3, 29, 6, 30
    )
