"""Drop the per-insert NOTIFY trigger: writers notify only when no relay runs beside them.

A transaction that has sent NOTIFY takes a database-wide lock from pre-commit to the end
of its commit, so every writer committing with a notification queues behind the others'
WAL flushes. With an in-process relay the writer wakes it directly; only API processes
that run without a relay send NOTIFY (see `task_api.http.routes.write`).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("tasks", "0002_outbox_wakeup")]

    operations = [
        ops.RunSQL(
            [
                "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
                "DROP FUNCTION IF EXISTS taskflow_outbox_notify()",
            ],
            reverse_sql=[
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
        )
    ]
