-- Append-only audit entries, hash-chained per source (topic, partition).
CREATE TABLE audit_entries (
    entry_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      text        NOT NULL,
    chain_id      text        NOT NULL,
    chain_seq     bigint      NOT NULL,
    source_offset bigint,
    type          text        NOT NULL,
    source        text        NOT NULL,
    subject       text,
    user_id       text,
    task_id       text,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL,
    -- json, not jsonb: the exact canonical text that was hashed is what is stored.
    data          json,
    trace_id      text,
    snapshot      boolean     NOT NULL DEFAULT false,
    prev_hash     text        NOT NULL,
    hash          text        NOT NULL,
    -- Set when retention removed the content: the row stays as a tombstone whose
    -- hashes bridge the gap, so the chain still verifies.
    purged_at     timestamptz,
    -- Full text over the human words of an event (title, description, tags, bodies),
    -- computed by the writer: indexing the whole JSON halved ingest speed.
    search        tsvector,
    CONSTRAINT audit_entries_event_id_key UNIQUE (event_id),
    CONSTRAINT audit_entries_chain_seq_key UNIQUE (chain_id, chain_seq)
);

CREATE INDEX audit_entries_user_idx ON audit_entries (user_id, entry_id);
CREATE INDEX audit_entries_task_idx ON audit_entries (task_id, entry_id);
-- Rows arrive roughly in time order, so BRIN serves time ranges (search from/to,
-- retention by recorded_at) for almost no write cost.
CREATE INDEX audit_entries_occurred_brin ON audit_entries USING brin (occurred_at);
CREATE INDEX audit_entries_recorded_brin ON audit_entries USING brin (recorded_at);
CREATE INDEX audit_entries_search_idx ON audit_entries USING gin (search);

-- Where each chain ends; the writer locks this row, so a replay or a second writer
-- can never fork a chain. last_offset also makes re-delivered messages no-ops.
CREATE TABLE audit_chain_heads (
    chain_id         text PRIMARY KEY,
    seq              bigint      NOT NULL DEFAULT 0,
    hash             text        NOT NULL,
    source_topic     text,
    source_partition integer,
    last_offset      bigint      NOT NULL DEFAULT -1,
    dlq_count        bigint      NOT NULL DEFAULT 0,
    last_latency_s   double precision,
    updated_at       timestamptz NOT NULL
);

-- Signed digests over chain ranges; each covers the previous digest's signature.
CREATE TABLE audit_digests (
    digest_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id       text        NOT NULL,
    from_seq       bigint      NOT NULL,
    to_seq         bigint      NOT NULL,
    head_hash      text        NOT NULL,
    prev_signature text        NOT NULL,
    algorithm      text        NOT NULL,
    key_id         text        NOT NULL,
    created_at     timestamptz NOT NULL,
    signature      text        NOT NULL,
    CONSTRAINT audit_digests_chain_to_key UNIQUE (chain_id, to_seq)
);

CREATE TABLE audit_holds (
    hold_id     uuid PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('user', 'task')),
    value       text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    released_at timestamptz,
    released_by text
);
CREATE UNIQUE INDEX audit_holds_active_key ON audit_holds (kind, value) WHERE released_at IS NULL;

-- Append-only: rows are never deleted, and the only update allowed is the retention
-- tombstone (content cleared, identity and hashes kept). The hash chain still catches
-- anyone able to bypass this (e.g. a superuser with session_replication_role=replica).
CREATE FUNCTION audit_entries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries are append-only';
    END IF;
    IF OLD.purged_at IS NOT NULL
       OR NEW.purged_at IS NULL
       OR NEW.data IS NOT NULL
       OR (NEW.event_id, NEW.chain_id, NEW.chain_seq, NEW.prev_hash, NEW.hash, NEW.type,
           NEW.occurred_at, NEW.recorded_at)
          IS DISTINCT FROM
          (OLD.event_id, OLD.chain_id, OLD.chain_seq, OLD.prev_hash, OLD.hash, OLD.type,
           OLD.occurred_at, OLD.recorded_at) THEN
        RAISE EXCEPTION 'audit entries are append-only (only a retention tombstone may update)';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_entries_append_only
    BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_guard();
