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
