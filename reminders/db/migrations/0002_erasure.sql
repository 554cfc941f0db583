-- Erasure (issue 16). Users erased, kept for good: the flow writes no schedule row for
-- them any more (a task event can arrive after `user.erased`: other key, other partition),
-- and the read API answers 410.
CREATE TABLE erased_users (
    user_id      text        PRIMARY KEY,
    erasure_id   uuid        NOT NULL,
    requested_at timestamptz NOT NULL,
    erased_at    timestamptz NOT NULL DEFAULT now()
);

-- Whose reminder a log row records: the user's history for GET /api/v1/me/export. An
-- erasure clears both columns (the row stays: it keeps replayed metrics from counting twice).
ALTER TABLE flow_log ADD COLUMN user_id text NULL, ADD COLUMN task_id uuid NULL;
CREATE INDEX flow_log_user ON flow_log (user_id, recorded_at) WHERE user_id IS NOT NULL;
