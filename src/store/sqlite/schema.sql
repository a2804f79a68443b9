-- bizrelay store, schema 6. Times are Unix milliseconds. Rows carry a format version `v`
-- (the dedup keys in `seen` are bare keys and need none). Inspect with:
--   sqlite3 data/bizrelay.db 'select id, destination, state, attempts, reason from deliveries'
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The inbox. state: waiting (to be routed; claimed by `owner` until `claim_until`), routed,
-- unrouted (matched no route, kept for `reroute`), quarantined (routing failed `failures`
-- times; `reason` says why). `sent_to` is the JSON list of destinations the hook was given,
-- so routing it again never gives it to them twice. `envelope` is the POST's envelope as JSON,
-- or empty when the POST left several hooks: then it is in `posts`, written once.
CREATE TABLE IF NOT EXISTS hooks (
    id          INTEGER PRIMARY KEY,
    v           INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    envelope    TEXT NOT NULL,
    raw         TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'waiting',
    owner       TEXT,
    claim_until INTEGER,
    sent_to     TEXT,
    failures    INTEGER NOT NULL DEFAULT 0,
    reason      TEXT
);
CREATE INDEX IF NOT EXISTS hooks_waiting ON hooks (id) WHERE state = 'waiting';
-- The envelope of a POST that left several hooks, for its hook rows first_row..last_row
-- (consecutive: one transaction writes them). A quarter of a message-result row's bytes was
-- its copy of the envelope. Pruned with the last of its hooks.
CREATE TABLE IF NOT EXISTS posts (
    first_row   INTEGER PRIMARY KEY,
    last_row    INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    envelope    TEXT NOT NULL
);
-- How many hooks are kept unrouted and quarantined, changed in the transactions that change
-- a hook's state (so `/metrics` and `/readyz` need no scan of `hooks`).
CREATE TABLE IF NOT EXISTS inbox_counts (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL
) WITHOUT ROWID;

-- No index on unrouted or quarantined hooks: unrouted hooks are the bulk of the inbox (every
-- success that matches no route) and an index entry each cost the writer about a fifth of its
-- time per hook, while the queries that look for them (listings, reroute, prune) are scans
-- either way (schema 3's `hooks_kept` was never chosen by the planner: `state = 'x'`
-- does not imply its `state IN (...)`).

-- Dedup keys (h:<hookId> or c:<content hash>) and when they were last seen. No index on
-- `seen_at` (schema 5's `seen_by_time`): pruning sweeps the keys in key order instead, which
-- costs the writer far less than a second B-tree insert per hook (sql/seen.rs).
CREATE TABLE IF NOT EXISTS seen (
    key     TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Hooks that could not be understood, kept for inspection.
CREATE TABLE IF NOT EXISTS rejected (
    id          INTEGER PRIMARY KEY,
    v           INTEGER NOT NULL DEFAULT 1,
    received_at INTEGER NOT NULL,
    hooks_id    TEXT,
    position    INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    raw         TEXT NOT NULL
);

-- Digest groups of grouped routes. A digest is built under a claim (`claim_token` until
-- `claim_until`), which marks the members it covers with the same token.
CREATE TABLE IF NOT EXISTS groups (
    route         TEXT NOT NULL,
    v             INTEGER NOT NULL DEFAULT 1,
    group_key     TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    total         INTEGER NOT NULL,
    pending       INTEGER NOT NULL,
    last_flush_at INTEGER,
    next_flush_at INTEGER,
    resolve_at    INTEGER,
    settings      TEXT NOT NULL,
    claim_owner   TEXT,
    claim_token   INTEGER,
    claim_until   INTEGER,
    PRIMARY KEY (route, group_key)
);
-- A member carries what a digest counts, so a digest of any size is a few GROUP BY queries
-- plus `max_items` sample rows, never the whole group in memory.
CREATE TABLE IF NOT EXISTS group_members (
    route        TEXT NOT NULL,
    v            INTEGER NOT NULL DEFAULT 1,
    group_key    TEXT NOT NULL,
    hook_row     INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    result_code  TEXT,
    message_type TEXT,
    sender_key   TEXT,
    flush_token  INTEGER,
    PRIMARY KEY (route, group_key, hook_row)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_members_by_hook ON group_members (hook_row);

-- Digests sent, with their template context (for re-rendering dead letters).
CREATE TABLE IF NOT EXISTS digests (
    id         INTEGER PRIMARY KEY,
    v          INTEGER NOT NULL,
    route      TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    count      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    context    TEXT NOT NULL
);

-- The outbox: one row per (hook or digest, destination), holding the rendered body.
-- state: pending | leased (to `lease_owner` until `lease_until`) | done | dead. Ids are never
-- reused (they are shown to operators and sent as X-Bizrelay-Delivery).
CREATE TABLE IF NOT EXISTS deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    v                INTEGER NOT NULL,
    destination      TEXT NOT NULL,
    route            TEXT NOT NULL,
    template         TEXT NOT NULL,
    hook_row         INTEGER,
    digest_id        INTEGER,
    hook_id          TEXT,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    first_attempt_at INTEGER,
    last_attempt_at  INTEGER,
    last_status      INTEGER,
    reason           TEXT,
    done_at          INTEGER,
    lease_owner      TEXT,
    lease_token      INTEGER,
    lease_until      INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries (destination, id) WHERE state IN ('pending', 'leased');
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, destination);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_one_per_hook ON deliveries (hook_row, destination) WHERE hook_row IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_by_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;

-- One row per destination, shared by every sender: the pace (GCRA theoretical arrival time)
-- and a 429's pause.
CREATE TABLE IF NOT EXISTS destinations (
    name          TEXT PRIMARY KEY,
    tat           INTEGER NOT NULL DEFAULT 0,
    blocked_until INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Slack threads (`slack_bot` destinations): where each key's root message is and what it
-- shows. Kept `threads.keep` after its last change.
CREATE TABLE IF NOT EXISTS threads (
    destination   TEXT NOT NULL,
    sender_key    TEXT NOT NULL,
    template_code TEXT NOT NULL,
    channel       TEXT NOT NULL,
    root_ts       TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_at     TEXT NOT NULL,
    shown         TEXT NOT NULL,
    applied       INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (destination, sender_key, template_code)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS threads_by_age ON threads (updated_at);
-- Silences (`bizrelay silence`): matchers as a JSON list of {"key","pattern"}; active from
-- starts_at (inclusive) to ends_at (exclusive); expiring one moves ends_at to that time.
CREATE TABLE IF NOT EXISTS silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    v          INTEGER NOT NULL,
    matchers   TEXT NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    comment    TEXT NOT NULL,
    author     TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS silences_by_end ON silences (ends_at);

-- Hooks of a digest group that a silence held back since the group's last digest, shown as
-- "+N silenced" in the next one (they are not members: they start no digest of their own).
CREATE TABLE IF NOT EXISTS group_silenced (
    route     TEXT NOT NULL,
    group_key TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (route, group_key)
) WITHOUT ROWID;
-- Enrichment (issue #16): lookups of NHN's message query API waiting to be made, one per
-- requestId (single flight), claimed by `owner` until `claim_until`; tried again at `next_at`.
CREATE TABLE IF NOT EXISTS enrich_lookups (
    request_id    TEXT PRIMARY KEY,
    v             INTEGER NOT NULL DEFAULT 1,
    app_key       TEXT NOT NULL,
    message_type  TEXT,
    recipient_seq INTEGER NOT NULL,
    href          TEXT,
    created_at    INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    owner         TEXT,
    claim_until   INTEGER,
    last_error    TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS enrich_lookups_due ON enrich_lookups (app_key, next_at);
-- What a lookup learned (`fields` JSON; NULL when NHN had nothing), shared by every recipient
-- of the request, until `expires_at`.
CREATE TABLE IF NOT EXISTS enrich_cache (
    request_id    TEXT PRIMARY KEY,
    v             INTEGER NOT NULL DEFAULT 1,
    recipient_seq INTEGER,
    fields        TEXT,
    stored_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS enrich_cache_expiry ON enrich_cache (expires_at);
-- Rate alerts (issue #15): what each alert series of a rate route counted per tumbling
-- window (`window_start`), outcome and result code ('' for none); silenced results apart.
-- At most the judged window and the one being filled are kept per series.
CREATE TABLE IF NOT EXISTS rate_counts (
    route        TEXT NOT NULL,
    series_key   TEXT NOT NULL,
    window_ms    INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    result_code  TEXT NOT NULL,
    counted      INTEGER NOT NULL,
    silenced     INTEGER NOT NULL,
    PRIMARY KEY (route, series_key, window_ms, window_start, outcome, result_code)
) WITHOUT ROWID;
-- An alert series (a route's `by` values and window length: a reload to another length starts
-- a new series): its state (JSON, `rate::SeriesState`), the next window to judge
-- (`eval_window`, due `window_ms` + grace after it starts; NULL while quiet with nothing
-- counted), the last judged, and the claim of the consumer judging it.
CREATE TABLE IF NOT EXISTS rate_series (
    route          TEXT NOT NULL,
    series_key     TEXT NOT NULL,
    v              INTEGER NOT NULL DEFAULT 1,
    settings       TEXT NOT NULL,
    window_ms      INTEGER NOT NULL,
    state          TEXT,
    eval_window    INTEGER,
    judged_through INTEGER,
    claim_owner    TEXT,
    claim_token    INTEGER,
    claim_until    INTEGER,
    PRIMARY KEY (route, series_key, window_ms)
);
CREATE INDEX IF NOT EXISTS rate_series_due ON rate_series (eval_window);
