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


class UserGone(ReminderError, ProblemError):
    """The caller's user was erased (410): nothing of theirs is kept."""

    status = 410
    title = "Gone"
    slug = "user-erased"

    def __init__(self) -> None:
        super().__init__("this user was erased; nothing of theirs is kept")


__all__ = [
    "InvalidQuery",
    "InvalidRecurrence",
    "InvalidTimezone",
    "ProblemError",
    "ReminderError",
    "UserGone",
]
