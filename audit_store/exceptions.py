"""Domain errors of the audit service, rooted in `AuditError` and mapped to problem+json."""

from __future__ import annotations

from webapi.problems import ProblemError


class AuditError(ProblemError):
    """Base of every audit service error."""


class Forbidden(AuditError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class HoldNotFound(AuditError):
    status = 404
    title = "Not found"
    slug = "not-found"


class ErasureNotFound(AuditError):
    status = 404
    title = "Not found"
    slug = "not-found"


class KeyUnavailable(AuditError):
    """A data key cannot be unwrapped (unknown or wrong key-encryption key): a
    configuration error, never shown as data."""

    status = 500
    title = "Key unavailable"
    slug = "key-unavailable"
