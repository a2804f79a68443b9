//! The SQL behind [`super::SqliteStore`]: one function per store operation, each given the
//! connection (inside the writer's transaction for writes). The inbox, the digest groups and
//! the outbox and the silences each have their own file; this one holds the schema, shared readers, pruning.

mod enrich;
mod groups;
mod inbox;
mod outbox;
mod rates;
pub(super) mod seen;
mod silences;
mod threads;

use rusqlite::{Connection, OptionalExtension, params};

pub(super) use enrich::*;
pub(super) use groups::*;
pub(super) use inbox::*;
pub(super) use outbox::*;
pub(super) use rates::*;
pub(super) use seen::Sweep;
pub(super) use silences::*;
pub(super) use threads::*;

use super::SCHEMA_VERSION;
use crate::store::*;

/// Rows deleted per table per prune call, so pruning never holds the write lock for long.
pub(super) const PRUNE_CHUNK: usize = 5000;

/// Creates the schema, or brings an older one up to date.
pub(super) fn init_schema(c: &Connection) -> Result<(), rusqlite::Error> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )?;
    let found: Option<String> = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let found = match found.map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return Err(rusqlite::Error::InvalidParameterName(
                "meta.schema_version is not a number".into(),
            ));
        }
    };
    if found == Some(1) {
        migrate_from_1(c)?;
    }
    if matches!(found, Some(1 | 2)) {
        migrate_from_2(c)?;
    }
    if matches!(found, Some(1..=3)) {
        migrate_from_3(c)?;
    }
    if matches!(found, Some(1..=4)) {
        migrate_from_4(c)?;
    }
    if matches!(found, Some(1..=5)) {
        migrate_from_5(c)?;
    }
    c.execute_batch(include_str!("../schema.sql"))?;
    count_kept_hooks(c)?;
    if found.is_none() {
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION.to_string()],
        )?;
    }
    Ok(())
}

/// Fills `inbox_counts` from the hooks when it is empty (a new store, or one from before the
/// table): the one time the kept hooks are counted by a scan.
fn count_kept_hooks(c: &Connection) -> Result<(), rusqlite::Error> {
    let counted: bool = c.query_row("SELECT EXISTS (SELECT 1 FROM inbox_counts)", [], |r| {
        r.get(0)
    })?;
    if !counted {
        c.execute_batch(
            "INSERT INTO inbox_counts (state, n)
               SELECT 'unrouted', COUNT(*) FROM hooks WHERE state = 'unrouted';
             INSERT INTO inbox_counts (state, n)
               SELECT 'quarantined', COUNT(*) FROM hooks WHERE state = 'quarantined';",
        )?;
    }
    Ok(())
}

/// Adds `delta` to the count of hooks kept in `state` (`unrouted` or `quarantined`), in the
/// transaction that moved them.
pub(super) fn add_kept(c: &Connection, state: &str, delta: i64) -> Result<(), StoreError> {
    if delta != 0 {
        c.prepare_cached("UPDATE inbox_counts SET n = n + ?2 WHERE state = ?1")?
            .execute(params![state, delta])?;
    }
    Ok(())
}

/// The schema version stored in the file (None for a new file).
pub(super) fn stored_version(c: &Connection) -> Result<Option<i64>, rusqlite::Error> {
    let exists: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let v: Option<String> = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()))
}

/// Schema 1 had a dispatch cursor instead of per-hook states, and no claims or leases.
fn migrate_from_1(c: &Connection) -> Result<(), rusqlite::Error> {
    let cursor: i64 = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'dispatch_cursor'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    c.execute_batch(
        "ALTER TABLE hooks ADD COLUMN state TEXT NOT NULL DEFAULT 'waiting';
         ALTER TABLE hooks ADD COLUMN owner TEXT;
         ALTER TABLE hooks ADD COLUMN claim_until INTEGER;
         ALTER TABLE hooks ADD COLUMN sent_to TEXT;
         ALTER TABLE hooks ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE hooks ADD COLUMN reason TEXT;
         ALTER TABLE groups ADD COLUMN claim_owner TEXT;
         ALTER TABLE groups ADD COLUMN claim_token INTEGER;
         ALTER TABLE groups ADD COLUMN claim_until INTEGER;
         ALTER TABLE group_members ADD COLUMN flush_token INTEGER;
         ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
         ALTER TABLE deliveries ADD COLUMN lease_token INTEGER;
         ALTER TABLE deliveries ADD COLUMN lease_until INTEGER;
         DROP INDEX IF EXISTS deliveries_pending;
         DROP INDEX IF EXISTS deliveries_by_hook;",
    )?;
    // Hooks behind the cursor were routed; the ones with no delivery or membership matched
    // no route (schema 1 did not keep that apart).
    c.execute(
        "UPDATE hooks SET state = CASE
             WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.hook_row = hooks.id)
               OR EXISTS (SELECT 1 FROM group_members m WHERE m.hook_row = hooks.id) THEN 'routed'
             ELSE 'unrouted' END,
           sent_to = (SELECT json_group_array(DISTINCT d.destination) FROM deliveries d WHERE d.hook_row = hooks.id)
         WHERE id <= ?1",
        [cursor],
    )?;
    c.execute(
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
        [],
    )?;
    c.execute("DELETE FROM meta WHERE key = 'dispatch_cursor'", [])?;
    Ok(())
}

/// Schema 2 had no resolved messages for digest groups.
/// Idempotent, so a migration cut short (or raced by a second opener) is finished later.
fn migrate_from_2(c: &Connection) -> Result<(), rusqlite::Error> {
    let has: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('groups') WHERE name = 'resolve_at')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        c.execute_batch("ALTER TABLE groups ADD COLUMN resolve_at INTEGER;")?;
    }
    c.execute(
        "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
        [],
    )?;
    Ok(())
}

/// Schema 3 indexed unrouted and quarantined hooks (`hooks_kept`), an index no query used
/// and every unrouted hook paid for. Idempotent.
fn migrate_from_3(c: &Connection) -> Result<(), rusqlite::Error> {
    c.execute_batch(
        "DROP INDEX IF EXISTS hooks_kept;
         UPDATE meta SET value = '4' WHERE key = 'schema_version';",
    )
}

/// Schema 4 wrote the envelope into every hook row; schema 5 adds `posts` (created by
/// schema.sql), and the rows written before keep their own envelopes. Idempotent.
fn migrate_from_4(c: &Connection) -> Result<(), rusqlite::Error> {
    c.execute(
        "UPDATE meta SET value = '5' WHERE key = 'schema_version'",
        [],
    )?;
    Ok(())
}

/// Schema 6 drops `seen_by_time`: the dedup keys are pruned by a sweep in key order (see
/// `seen.rs`).
fn migrate_from_5(c: &Connection) -> Result<(), rusqlite::Error> {
    c.execute_batch(
        "DROP INDEX IF EXISTS seen_by_time;
         UPDATE meta SET value = '6' WHERE key = 'schema_version';",
    )
}

/// A `serve` start owns a store exclusively (it holds the lock): claims and leases left by a
/// crashed run are released at once instead of waiting for them to expire.
pub(super) fn release_claims(c: &Connection) -> Result<(), rusqlite::Error> {
    c.execute_batch(
        "UPDATE hooks SET owner = NULL, claim_until = NULL WHERE state = 'waiting' AND owner IS NOT NULL;
         UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_token = NULL, lease_until = NULL
           WHERE state = 'leased';
         UPDATE groups SET claim_owner = NULL, claim_token = NULL, claim_until = NULL WHERE claim_token IS NOT NULL;
         UPDATE group_members SET flush_token = NULL WHERE flush_token IS NOT NULL;
         UPDATE rate_series SET claim_owner = NULL, claim_token = NULL, claim_until = NULL WHERE claim_token IS NOT NULL;",
    )
}

/// A random claim or lease token.
pub(super) fn token() -> i64 {
    rand::random::<i64>() & i64::MAX
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Columns read by [`hooks_from`], from `hooks h`. A hook stored with an empty `envelope`
/// has it in the `posts` row whose range covers it.
const HOOK_COLUMNS: &str = "h.id, h.received_at, h.raw,
    CASE h.envelope WHEN '' THEN (SELECT p.envelope FROM posts p
      WHERE p.first_row <= h.id AND p.last_row >= h.id ORDER BY p.first_row DESC LIMIT 1)
    ELSE h.envelope END,
    h.sent_to, h.failures";

fn sent_to_of(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Reads one hook row.
fn hook_from(r: &rusqlite::Row<'_>, cache: &mut EnvelopeCache) -> Result<StoredHook, StoreError> {
    let row: i64 = r.get(0)?;
    let text: Option<String> = r.get(3)?;
    let text = text.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "hook row {row}: its POST's envelope (table posts) is missing"
        ))
    })?;
    let envelope = cache.get(&text, row)?;
    Ok(StoredHook {
        row,
        received_at: r.get(1)?,
        raw: r.get::<_, String>(2)?.into(),
        envelope,
        sent_to: sent_to_of(r.get(4)?),
        failures: r.get(5)?,
        parsed: None,
    })
}

fn hooks_from(rows: &mut rusqlite::Rows<'_>) -> Result<Vec<StoredHook>, StoreError> {
    let mut cache = EnvelopeCache::default();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(hook_from(r, &mut cache)?);
    }
    Ok(out)
}

pub(super) fn prune(
    c: &Connection,
    before: PruneBefore,
    sweep: &mut Sweep,
) -> Result<PruneStats, StoreError> {
    let chunk = PRUNE_CHUNK as i64;
    let swept = seen::sweep(c, before, sweep, std::time::Instant::now())?;
    if sweep.rest_done() {
        return Ok(PruneStats {
            seen: swept.deleted,
            keys_looked_at: swept.looked,
            ..PruneStats::default()
        });
    }
    let deliveries = c.execute(
        "DELETE FROM deliveries WHERE id IN
           (SELECT id FROM deliveries WHERE state = 'done' AND done_at < ?1 LIMIT ?2)",
        params![before.delivered, chunk],
    )?;
    // The newest hook always stays, so SQLite never hands out an id a delivery, digest member
    // or listing could still mean.
    let deleted: Vec<String> = c
        .prepare_cached(
            "DELETE FROM hooks WHERE id IN (SELECT h.id FROM hooks h
           WHERE h.id < (SELECT MAX(id) FROM hooks)
             AND ((h.state = 'routed' AND h.received_at < ?1)
               OR (h.state IN ('unrouted', 'quarantined') AND h.received_at < ?2))
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.hook_row = h.id)
             AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.hook_row = h.id)
           LIMIT ?3)
         RETURNING state",
        )?
        .query_map(params![before.delivered, before.unrouted, chunk], |r| {
            r.get(0)
        })?
        .collect::<Result<_, _>>()?;
    let hooks = deleted.len();
    // A POST's shared envelope goes with the last of its hooks. Only POSTs older than both
    // hook cutoffs can have lost all their hooks to pruning.
    c.prepare_cached(
        "DELETE FROM posts WHERE first_row IN (SELECT p.first_row FROM posts p
           WHERE p.received_at < MAX(?1, ?2)
             AND NOT EXISTS (SELECT 1 FROM hooks h WHERE h.id BETWEEN p.first_row AND p.last_row)
           LIMIT ?3)",
    )?
    .execute(params![before.delivered, before.unrouted, chunk])?;
    for kept in ["unrouted", "quarantined"] {
        let n = deleted.iter().filter(|s| *s == kept).count();
        add_kept(c, kept, -(n as i64))?;
    }
    c.execute(
        "DELETE FROM digests WHERE id IN (SELECT g.id FROM digests g WHERE g.created_at < ?1
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.digest_id = g.id) LIMIT ?2)",
        params![before.delivered, chunk],
    )?;
    for sql in PRUNE_ONCALL {
        c.execute(sql, params![before.delivered])?;
    }
    c.execute(PRUNE_SILENCES, params![before.unrouted])?;
    let rejected = c.execute(
        "DELETE FROM rejected WHERE id IN (SELECT id FROM rejected WHERE received_at < ?1 LIMIT ?2)",
        params![before.seen, chunk],
    )?;
    if hooks + deliveries + rejected == 0 {
        sweep.set_rest_done();
    }
    Ok(PruneStats {
        seen: swept.deleted,
        keys_looked_at: swept.looked,
        hooks,
        deliveries,
        rejected,
    })
}

pub(super) fn ping(c: &Connection) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('ping', strftime('%s', 'now'))
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [],
    )?;
    Ok(())
}
