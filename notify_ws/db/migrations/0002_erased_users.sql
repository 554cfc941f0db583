-- Erasure (issue 16): one row per erased user, kept for good. The worker drops every later
-- event of a user found here (task events are keyed by task, `user.erased` by user, so one
-- can arrive after the erasure), and the REST API and /ws refuse the user. The row is also
-- the outbox of `user.erasure.applied`: written in the erasure's transaction, marked
-- published once the broker confirmed it.
CREATE TABLE erased_users (
    user_id      text PRIMARY KEY,
    erasure_id   uuid        NOT NULL,
    requested_at timestamptz NOT NULL,
    erased_at    timestamptz NOT NULL,
    traceparent  text,
    published_at timestamptz
);
CREATE INDEX erased_users_unpublished ON erased_users (erased_at) WHERE published_at IS NULL;

-- Digest rows carry no notification id (the others go with their notification, ON DELETE
-- CASCADE): the erasure finds them by user. Partial, so the hot insert path pays nothing.
CREATE INDEX deliveries_digest_user ON deliveries (user_id) WHERE notification_id IS NULL;
