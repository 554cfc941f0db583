"""Exceptions of the event contract."""

from __future__ import annotations


class EventError(Exception):
    """Base of every error the `events` package raises."""


class DecodeError(EventError):
    """A message is not a valid TaskFlow CloudEvent (bad JSON, envelope or payload)."""


class UnknownEventType(DecodeError):
    """A well-formed CloudEvent whose (type, version) has no registered payload."""


class PublishError(EventError):
    """The broker did not confirm delivery of a message."""
