"""Domain errors of the notification service; `webapi.problems` maps them to problem+json."""

from __future__ import annotations

from webapi.problems import NotFound, ProblemError, ValidationProblem


class NotifyError(ProblemError):
    """Base of every error this service raises towards a client."""


class NotificationNotFound(NotFound, NotifyError):
    slug = "notification-not-found"

    def __init__(self) -> None:
        super().__init__("no such notification")


class SubscriptionNotFound(NotFound, NotifyError):
    slug = "push-subscription-not-found"

    def __init__(self) -> None:
        super().__init__("no such push subscription")


class UserGone(NotifyError):
    """The caller's user was erased: the token may still verify, the account is gone."""

    status = 410
    title = "Gone"
    slug = "user-erased"

    def __init__(self) -> None:
        super().__init__("this user was erased; nothing of theirs is kept or sent")


class InvalidPreferences(ValidationProblem, NotifyError):
    """Preferences that parse but break a rule across fields."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, [{"field": field, "message": message}])


class ChannelError(Exception):
    """A channel could not deliver; `permanent` failures are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class CircuitOpen(ChannelError):
    """The channel's breaker is open: the delivery is postponed, not attempted."""
