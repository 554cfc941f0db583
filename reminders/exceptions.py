"""Errors of the reminder service, rooted in one base; HTTP ones map to problem+json."""

from __future__ import annotations

from webapi.problems import ProblemError, ValidationProblem


class ReminderError(Exception):
    """Base of every error the `reminders` package raises."""


class InvalidRecurrence(ReminderError, ValueError):
    """An RRULE that cannot be parsed or used."""


class InvalidTimezone(ReminderError, ValueError):
    """An unknown IANA time zone name."""


class InvalidQuery(ReminderError, ValidationProblem):
    """A read-API query that is well-formed JSON-wise but makes no sense (e.g. to < from)."""


__all__ = ["InvalidQuery", "InvalidRecurrence", "InvalidTimezone", "ProblemError", "ReminderError"]
