-- bizrelay on PostgreSQL, migration 1: the whole schema (same tables and meaning as the
-- SQLite store's schema.sql; times are Unix milliseconds).

CREATE TABLE hooks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    v           BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    envelope    TEXT NOT NULL,
    raw         TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'waiting',
    owner       TEXT,
    claim_until BIGINT,
    sent_to     TEXT,
    failures    BIGINT NOT NULL DEFAULT 0,
    reason      TEXT
);
CREATE INDEX hooks_waiting ON hooks (id) WHERE state = 'waiting';
CREATE INDEX hooks_kept ON hooks (state, id) WHERE state IN ('unrouted', 'quarantined');
CREATE INDEX hooks_by_time ON hooks (received_at);

CREATE TABLE seen (
    key     TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE INDEX seen_by_time ON seen (seen_at);

CREATE TABLE rejected (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    v           BIGINT NOT NULL DEFAULT 1,
    received_at BIGINT NOT NULL,
    hooks_id    TEXT,
    position    BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    raw         TEXT NOT NULL
);

CREATE TABLE groups (
    route         TEXT NOT NULL,
    v             BIGINT NOT NULL DEFAULT 1,
    group_key     TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    total         BIGINT NOT NULL,
    pending       BIGINT NOT NULL,
    last_flush_at BIGINT,
    next_flush_at BIGINT,
    settings      TEXT NOT NULL,
    claim_owner   TEXT,
    claim_token   BIGINT,
    claim_until   BIGINT,
    PRIMARY KEY (route, group_key)
);

CREATE TABLE group_members (
    route        TEXT NOT NULL,
    v            BIGINT NOT NULL DEFAULT 1,
    group_key    TEXT NOT NULL,
    hook_row     BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    result_code  TEXT,
    message_type TEXT,
    sender_key   TEXT,
    flush_token  BIGINT,
    PRIMARY KEY (route, group_key, hook_row)
);
CREATE INDEX group_members_by_hook ON group_members (hook_row);

CREATE TABLE digests (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    v          BIGINT NOT NULL,
    route      TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    count      BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    context    TEXT NOT NULL
);

CREATE TABLE deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    v                BIGINT NOT NULL,
    destination      TEXT NOT NULL,
    route            TEXT NOT NULL,
    template         TEXT NOT NULL,
    hook_row         BIGINT,
    digest_id        BIGINT,
    hook_id          TEXT,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    received_at      BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    first_attempt_at BIGINT,
    last_attempt_at  BIGINT,
    last_status      BIGINT,
    reason           TEXT,
    done_at          BIGINT,
    lease_owner      TEXT,
    lease_token      BIGINT,
    lease_until      BIGINT
);
CREATE INDEX deliveries_waiting ON deliveries (destination, id) WHERE state IN ('pending', 'leased');
CREATE INDEX deliveries_by_state ON deliveries (state, destination);
CREATE UNIQUE INDEX deliveries_one_per_hook ON deliveries (hook_row, destination) WHERE hook_row IS NOT NULL;
CREATE INDEX deliveries_by_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;
CREATE INDEX deliveries_done ON deliveries (done_at) WHERE state = 'done';

CREATE TABLE destinations (
    name          TEXT PRIMARY KEY,
    tat           BIGINT NOT NULL DEFAULT 0,
    blocked_until BIGINT NOT NULL DEFAULT 0
);

-- The queue tables churn: vacuum them early rather than at the default 20% of dead rows.
ALTER TABLE hooks SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
ALTER TABLE group_members SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
ALTER TABLE seen SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
