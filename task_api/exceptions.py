"""Domain errors of the task service; `webapi.problems` maps them to problem+json."""

from __future__ import annotations

from webapi.problems import NotFound, ProblemError, ValidationProblem


class TaskNotFound(NotFound):
    slug = "task-not-found"

    def __init__(self) -> None:
        super().__init__("no such task")


class VersionMismatch(ProblemError):
    status = 412
    title = "Precondition failed"
    slug = "version-mismatch"


class StateConflict(ProblemError):
    status = 409
    title = "Conflict"
    slug = "state-conflict"


class InvalidTask(ValidationProblem):
    """A request that parses but breaks a rule across fields (e.g. reminders need due_at)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, [{"field": field, "message": message}])


class IdempotencyKeyReused(ValidationProblem):
    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was used with a different request",
            [{"field": "Idempotency-Key", "message": "reused with a different request"}],
        )


class IdempotencyInProgress(ProblemError):
    status = 409
    title = "Conflict"
    slug = "idempotency-in-progress"


class UserGone(ProblemError):
    """A write for a user who was erased: nothing new is created for them (410, not 403:
    the request is well-formed and authorised, the user it is about no longer exists)."""

    status = 410
    title = "Gone"
    slug = "user-erased"

    def __init__(self) -> None:
        super().__init__("this user was erased; nothing can be written for them any more")


class UserNotFound(NotFound):
    """An unknown user, or one the caller may not see (never 403: that would reveal them)."""

    slug = "user-not-found"

    def __init__(self) -> None:
        super().__init__("no such user")
