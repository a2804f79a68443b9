-- bizrelay on PostgreSQL, migration 2: Slack threads (`slack_bot` destinations), as in the
-- SQLite store's `threads` table.

CREATE TABLE threads (
    destination   TEXT NOT NULL,
    sender_key    TEXT NOT NULL,
    template_code TEXT NOT NULL,
    channel       TEXT NOT NULL,
    root_ts       TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_at     TEXT NOT NULL,
    shown         TEXT NOT NULL,
    applied       BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (destination, sender_key, template_code)
);
CREATE INDEX threads_by_age ON threads (updated_at);
