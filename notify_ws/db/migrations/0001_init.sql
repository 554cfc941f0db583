-- Notification service schema v1.

-- Per-user counter: the next seq is last_seq + 1, taken in the same transaction as the
-- insert, so seqs are strictly increasing and gap-free; unread is kept alongside.
CREATE TABLE user_counters (
    user_id  text PRIMARY KEY,
    last_seq bigint NOT NULL,
    unread   bigint NOT NULL DEFAULT 0
);

-- Claimed first in the insert statement: a duplicate source event stops here, before it
-- can take a seq.
CREATE TABLE notification_keys (
    dedupe_key text PRIMARY KEY
);

CREATE TABLE notifications (
    id           uuid PRIMARY KEY,
    user_id      text NOT NULL,
    seq          bigint NOT NULL,
    kind         text NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL,
    task_id      uuid,
    event_id     text NOT NULL,
    dedupe_key   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    read_at      timestamptz,
    published_at timestamptz,
    traceparent  text,
    UNIQUE (user_id, seq)
);
CREATE INDEX notifications_unread ON notifications (user_id, seq) WHERE read_at IS NULL;
CREATE INDEX notifications_unpublished ON notifications (created_at) WHERE published_at IS NULL;

-- Highest task version applied: older task events are ignored.
CREATE TABLE task_versions (
    task_id uuid PRIMARY KEY,
    version bigint NOT NULL
);

CREATE TABLE preferences (
    user_id    text PRIMARY KEY,
    doc        jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE push_subscriptions (
    id         uuid PRIMARY KEY,
    user_id    text NOT NULL,
    endpoint   text NOT NULL,
    p256dh     text NOT NULL,
    auth       text NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (user_id, endpoint)
);

-- One row per notification and external channel (or one digest row covering several).
-- status: pending -> delivered | failed | skipped; deferred -> digested (folded into a digest).
CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    notification_id uuid REFERENCES notifications (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    channel         text NOT NULL,
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    digest_of       uuid[],
    last_error      text,
    reported        boolean NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL,
    UNIQUE (notification_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'deferred');
CREATE INDEX deliveries_unreported ON deliveries (updated_at) WHERE NOT reported;
