-- Crypto-shredding (issue 16). Entries written from now on are format 2: `data` holds the
-- event's data without its personal fields, `sealed` those fields encrypted with the
-- user's data key; the hash covers both as stored, so destroying the key (erasure) leaves
-- every chain and digest verifiable. Format 1 rows (plaintext `data`, hashed as such) stay.
ALTER TABLE audit_entries
    ADD COLUMN format    smallint NOT NULL DEFAULT 1,
    ADD COLUMN sealed    text,
    -- Set when an erasure redacted a format 1 row (its personal fields removed from
    -- `data`): like a tombstone its own content no longer matches its hash.
    ADD COLUMN erased_at timestamptz;

-- One data key per user, wrapped by the key-encryption key `kek_id`. Erasure sets
-- wrapped_key to NULL (shredded_at): the row then also says "this user is erased", so a
-- later event of the user gets no new key (no resurrection).
CREATE TABLE audit_user_keys (
    user_id     text PRIMARY KEY,
    wrapped_key bytea,
    kek_id      text,
    created_at  timestamptz NOT NULL,
    shredded_at timestamptz,
    CHECK ((wrapped_key IS NULL) = (shredded_at IS NOT NULL))
);

-- The erased-user record: the latest erasure of each user and where the audit part of
-- it stands (deferred while a legal hold covers the user).
CREATE TABLE audit_erasures (
    user_id      text PRIMARY KEY,
    erasure_id   uuid        NOT NULL,
    event_id     text        NOT NULL,
    requested_at timestamptz NOT NULL,
    requested_by text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('completed', 'deferred_legal_hold')),
    recorded_at  timestamptz NOT NULL,
    completed_at timestamptz
);

-- `user.erasure.applied` reports of the other services, for the erasure status.
CREATE TABLE audit_erasure_progress (
    user_id    text        NOT NULL,
    erasure_id uuid        NOT NULL,
    service    text        NOT NULL,
    outcome    text        NOT NULL,
    event_id   text        NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, erasure_id, service)
);

-- Still append-only. Three updates are allowed: the retention tombstone (as before, now
-- also clearing `sealed`); dropping an entry's full-text words (erasure); and redacting
-- a format 1 entry's personal fields (erasure of a user with entries from before format 2).
CREATE OR REPLACE FUNCTION audit_entries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries are append-only';
    END IF;
    IF (NEW.event_id, NEW.chain_id, NEW.chain_seq, NEW.prev_hash, NEW.hash, NEW.type,
        NEW.occurred_at, NEW.recorded_at, NEW.format)
       IS DISTINCT FROM
       (OLD.event_id, OLD.chain_id, OLD.chain_seq, OLD.prev_hash, OLD.hash, OLD.type,
        OLD.occurred_at, OLD.recorded_at, OLD.format) OR OLD.purged_at IS NOT NULL THEN
        RAISE EXCEPTION 'audit entries are append-only (identity and hashes never change)';
    END IF;
    -- The retention tombstone: content cleared.
    IF NEW.purged_at IS NOT NULL AND NEW.data IS NULL AND NEW.sealed IS NULL THEN
        RETURN NEW;
    END IF;
    -- Erasure: the search words go; a format 1 row's data may become its clear part once.
    IF NEW.purged_at IS NULL AND NEW.search IS NULL
       AND (NEW.source, NEW.subject, NEW.user_id, NEW.task_id, NEW.trace_id, NEW.snapshot,
            NEW.source_offset, NEW.sealed)
           IS NOT DISTINCT FROM
           (OLD.source, OLD.subject, OLD.user_id, OLD.task_id, OLD.trace_id, OLD.snapshot,
            OLD.source_offset, OLD.sealed)
       AND ((NEW.data::text IS NOT DISTINCT FROM OLD.data::text
             AND NEW.erased_at IS NOT DISTINCT FROM OLD.erased_at)
            OR (OLD.format = 1 AND OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL)) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only (only a tombstone or an erasure may update)';
END $$;
