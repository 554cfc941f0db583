-- Every reminder or digest the flow produces, recorded before it goes to Kafka: after a
-- crash the flow replays its last epoch, and a reminder that fires again is sent as the
-- recorded message (same event id), not grouped anew into a digest with a new id. Rows are
-- needed only until the next restart has replayed, so they are purged after minutes; an
-- erasure deletes the user's (the messages carry task titles).
CREATE TABLE sent_delivery (
    event_id      text        PRIMARY KEY,
    user_id       text        NOT NULL,
    reminder_ids  text[]      NOT NULL,
    topic         text        NOT NULL,
    key           bytea       NULL,
    value         bytea       NOT NULL,
    header_names  text[]      NOT NULL,
    header_values bytea[]     NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sent_delivery_recorded_at ON sent_delivery (recorded_at);
CREATE INDEX sent_delivery_user ON sent_delivery (user_id);
