from uuid import uuid4

from orjson import loads
from tortoise import fields, migrations
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.fields.data import JSON_DUMPS
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="IdempotencyRecord",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("user_id", fields.CharField(max_length=255)),
                ("key", fields.CharField(max_length=255)),
                ("request_hash", fields.CharField(max_length=64)),
                ("status_code", fields.IntField(null=True)),
                ("response_body", fields.BinaryField(null=True)),
                (
                    "response_headers",
                    fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "idempotency_keys",
                "app": "tasks",
                "unique_together": (("user_id", "key"),),
                "pk_attr": "id",
                "table_description": "The first response to an `Idempotency-Key`, replayed for 24 h.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OutboxEvent",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("event_id", fields.UUIDField(unique=True)),
                ("topic", fields.CharField(max_length=255)),
                ("key", fields.CharField(max_length=255)),
                ("event_type", fields.CharField(max_length=64)),
                ("payload", fields.BinaryField()),
                ("headers", fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "published_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "outbox",
                "app": "tasks",
                "pk_attr": "id",
                "table_description": "One event waiting for (or done with) publication; written in the change's transaction.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Task",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                ("user_id", fields.CharField(max_length=255)),
                ("title", fields.CharField(max_length=500)),
                ("description", fields.TextField(null=True, unique=False)),
                ("due_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("timezone", fields.CharField(default="UTC", max_length=64)),
                ("priority", fields.CharField(default="medium", max_length=6)),
                ("tags", ArrayField(default=list, element_type="TEXT")),
                ("reminders", fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ("recurrence", fields.CharField(null=True, max_length=500)),
                ("status", fields.CharField(default="open", max_length=9)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "completed_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "snoozed_until",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("version", fields.IntField(default=1)),
            ],
            options={
                "table": "tasks",
                "app": "tasks",
                "indexes": [Index(fields=["user_id", "status", "id"])],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
    ]
