"""Erased users (issue 16), and a guard that refuses a task of an erased user.

The guard is a trigger so that no writer (REST, MCP, a future one) can forget it, and so
the hot create path keeps its single statement. It takes a shared per-user advisory lock
that the erasure takes exclusively: a create either commits before the erasure deletes the
user's tasks (and is deleted with them) or sees the erasure row and fails with SQLSTATE
TF410, which `task_api.db.erasures` turns into a 410 problem.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("tasks", "0003_notify_from_writers")]

    operations = [
        ops.CreateModel(
            name="Erasure",
            fields=[
                (
                    "user_id",
                    fields.CharField(primary_key=True, max_length=255, unique=True, db_index=True),
                ),
                ("erasure_id", fields.UUIDField(unique=True)),
                ("requested_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("requested_by", fields.CharField(max_length=255)),
            ],
            options={
                "table": "erasures",
                "app": "tasks",
                "pk_attr": "user_id",
                "table_description": "A user erased at their request (or an operator's): "
                "kept for good, so writes of that user stay refused and a restore from "
                "backup can re-apply the erasure.",
            },
            bases=["Model"],
        ),
        ops.RunSQL(
            [
                # VOLATILE plpgsql: the EXISTS runs with a snapshot taken after the lock,
                # so it sees an erasure that committed while this insert waited.
                """
                CREATE FUNCTION taskflow_refuse_erased_user() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_advisory_xact_lock_shared(hashtextextended(NEW.user_id, 16));
                    IF EXISTS (SELECT 1 FROM erasures WHERE user_id = NEW.user_id) THEN
                        RAISE EXCEPTION 'user % was erased', NEW.user_id
                            USING ERRCODE = 'TF410';
                    END IF;
                    RETURN NEW;
                END;
                $$
                """,
                "CREATE TRIGGER tasks_refuse_erased_user BEFORE INSERT ON tasks"
                " FOR EACH ROW EXECUTE FUNCTION taskflow_refuse_erased_user()",
            ],
            reverse_sql=[
                "DROP TRIGGER IF EXISTS tasks_refuse_erased_user ON tasks",
                "DROP FUNCTION IF EXISTS taskflow_refuse_erased_user()",
            ],
        ),
    ]
