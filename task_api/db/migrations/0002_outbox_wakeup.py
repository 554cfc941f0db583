"""Outbox plumbing the ORM does not model: the pending-rows index and the commit wake-up."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("tasks", "0001_initial")]

    operations = [
        ops.RunSQL(
            [
                # The relay only ever scans unpublished rows, oldest first.
                "CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL",
                "CREATE INDEX outbox_pending_key_idx ON outbox (key, id) WHERE published_at IS NULL",
                "CREATE INDEX outbox_published_at_idx ON outbox (published_at)"
                " WHERE published_at IS NOT NULL",
                "CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at)",
                # One NOTIFY per inserting statement, delivered at commit: relays in other
                # processes wake without polling, and with no extra round trip per write.
                """
                CREATE FUNCTION taskflow_outbox_notify() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_notify('taskflow_outbox', '');
                    RETURN NULL;
                END;
                $$
                """,
                "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox"
                " FOR EACH STATEMENT EXECUTE FUNCTION taskflow_outbox_notify()",
            ],
            reverse_sql=[
                "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
                "DROP FUNCTION IF EXISTS taskflow_outbox_notify()",
                "DROP INDEX IF EXISTS idempotency_keys_created_at_idx",
                "DROP INDEX IF EXISTS outbox_published_at_idx",
                "DROP INDEX IF EXISTS outbox_pending_key_idx",
                "DROP INDEX IF EXISTS outbox_pending_idx",
            ],
        )
    ]
