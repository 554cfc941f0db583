"""Tortoise models of the task database: tasks, the outbox and idempotency records."""

from __future__ import annotations

from tortoise import fields
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.models import Model


class Task(Model):
    id = fields.UUIDField(primary_key=True)
    user_id = fields.CharField(max_length=255)
    title = fields.CharField(max_length=500)
    description = fields.TextField(null=True)
    due_at = fields.DatetimeField(null=True)
    timezone = fields.CharField(max_length=64, default="UTC")
    priority = fields.CharField(max_length=6, default="medium")
    tags = ArrayField(element_type="text", default=list)
    reminders: fields.Field[list[dict[str, str]]] = fields.JSONField(default=list)
    recurrence = fields.CharField(max_length=500, null=True)
    status = fields.CharField(max_length=9, default="open")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)
    snoozed_until = fields.DatetimeField(null=True)
    version = fields.IntField(default=1)

    class Meta:
        table = "tasks"
        # Listing is always per user, newest id last (UUIDv7 ids are time ordered).
        indexes = (("user_id", "status", "id"),)


class OutboxEvent(Model):
    """One event waiting for (or done with) publication; written in the change's transaction."""

    id = fields.BigIntField(primary_key=True)
    event_id = fields.UUIDField(unique=True)
    topic = fields.CharField(max_length=255)
    key = fields.CharField(max_length=255)
    event_type = fields.CharField(max_length=64)
    payload = fields.BinaryField()
    headers: fields.Field[list[list[str]]] = fields.JSONField(default=list)
    created_at = fields.DatetimeField()
    published_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox"


class IdempotencyRecord(Model):
    """The first response to an `Idempotency-Key`, replayed for 24 h."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.CharField(max_length=255)
    key = fields.CharField(max_length=255)
    request_hash = fields.CharField(max_length=64)
    status_code = fields.IntField(null=True)
    response_body = fields.BinaryField(null=True)
    response_headers: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()

    class Meta:
        table = "idempotency_keys"
        unique_together = (("user_id", "key"),)


class Erasure(Model):
    """A user erased at their request (or an operator's): kept for good, so writes of that
    user stay refused and a restore from backup can re-apply the erasure."""

    user_id = fields.CharField(max_length=255, primary_key=True)
    erasure_id = fields.UUIDField(unique=True)
    requested_at = fields.DatetimeField()
    requested_by = fields.CharField(max_length=255)

    class Meta:
        table = "erasures"
