-- bizrelay on PostgreSQL, migration 5: on-call (issue #15). Resolved messages for digest
-- groups, and rate alerts: the same tables and meaning as the SQLite store's `rate_counts`
-- and `rate_series`.

ALTER TABLE groups ADD COLUMN resolve_at BIGINT;

CREATE TABLE rate_counts (
    route        TEXT NOT NULL,
    series_key   TEXT NOT NULL,
    window_ms    BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    result_code  TEXT NOT NULL,
    counted      BIGINT NOT NULL,
    silenced     BIGINT NOT NULL,
    PRIMARY KEY (route, series_key, window_ms, window_start, outcome, result_code)
);

CREATE TABLE rate_series (
    route          TEXT NOT NULL,
    series_key     TEXT NOT NULL,
    v              BIGINT NOT NULL DEFAULT 1,
    settings       TEXT NOT NULL,
    window_ms      BIGINT NOT NULL,
    state          TEXT,
    eval_window    BIGINT,
    judged_through BIGINT,
    claim_owner    TEXT,
    claim_token    BIGINT,
    claim_until    BIGINT,
    PRIMARY KEY (route, series_key, window_ms)
);
CREATE INDEX rate_series_due ON rate_series (eval_window);
