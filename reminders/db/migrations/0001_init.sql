-- The upcoming reminders of every task (the dataflow replaces a task's rows on each change).
CREATE TABLE scheduled_reminder (
    task_id   uuid        NOT NULL,
    remind_at timestamptz NOT NULL,
    user_id   text        NOT NULL,
    kind      text        NOT NULL,
    due_at    timestamptz NULL,
    PRIMARY KEY (task_id, remind_at)
);
CREATE INDEX scheduled_reminder_user_time ON scheduled_reminder (user_id, remind_at, task_id);

-- One row per fired reminder, digest or dead letter: makes metric counting idempotent
-- under Bytewax's at-least-once replay (a replayed item finds its row and counts nothing).
CREATE TABLE flow_log (
    id          text             PRIMARY KEY,
    kind        text             NOT NULL,
    lateness_s  double precision NULL,
    recorded_at timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX flow_log_recorded_at ON flow_log (recorded_at);

-- Monotonic counters and histogram buckets behind /metrics (survive restarts and log purges).
CREATE TABLE flow_counter (
    name  text             NOT NULL,
    le    text             NOT NULL DEFAULT '',
    value double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (name, le)
);
