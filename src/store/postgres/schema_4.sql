-- bizrelay on PostgreSQL, migration 4: enrichment (issue #16). Same tables and meaning as
-- the SQLite store's `enrich_lookups` and `enrich_cache`.

CREATE TABLE enrich_lookups (
    request_id    TEXT PRIMARY KEY,
    v             BIGINT NOT NULL DEFAULT 1,
    app_key       TEXT NOT NULL,
    message_type  TEXT,
    recipient_seq BIGINT NOT NULL,
    href          TEXT,
    created_at    BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,
    owner         TEXT,
    claim_until   BIGINT,
    last_error    TEXT
);
CREATE INDEX enrich_lookups_due ON enrich_lookups (app_key, next_at);

CREATE TABLE enrich_cache (
    request_id    TEXT PRIMARY KEY,
    v             BIGINT NOT NULL DEFAULT 1,
    recipient_seq BIGINT,
    fields        TEXT,
    stored_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX enrich_cache_expiry ON enrich_cache (expires_at);
