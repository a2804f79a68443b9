//! Enrichment on SQLite: pending lookups (claimed like hooks) and the requestId cache.

use rusqlite::{Connection, OptionalExtension, params};

use crate::bizmessage::Enrichment;
use crate::store::enrich_types::parse_enrichment;
use crate::store::*;

/// Cache rows deleted per prune call.
const PRUNE_CHUNK: i64 = 5000;

pub(in crate::store::sqlite) fn request_lookups(
    c: &Connection,
    lookups: &[LookupRequest],
    now: i64,
) -> Result<usize, StoreError> {
    let mut insert = c.prepare_cached(
        "INSERT INTO enrich_lookups (request_id, app_key, message_type, recipient_seq, href,
                                     created_at, next_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6
          WHERE NOT EXISTS (SELECT 1 FROM enrich_cache WHERE request_id = ?1 AND expires_at > ?6)
         ON CONFLICT (request_id) DO NOTHING",
    )?;
    let mut filed = 0;
    for l in lookups {
        filed += insert.execute(params![
            l.request_id,
            l.app_key,
            l.message_type,
            l.recipient_seq,
            l.href,
            now
        ])?;
    }
    Ok(filed)
}

pub(in crate::store::sqlite) fn claim_lookups(
    c: &Connection,
    who: &Claimant,
    app_key: &str,
    now: i64,
    limit: usize,
) -> Result<Vec<PendingLookup>, StoreError> {
    let mut stmt = c.prepare_cached(
        "UPDATE enrich_lookups SET owner = ?1, claim_until = ?2 WHERE request_id IN (
           SELECT request_id FROM enrich_lookups
            WHERE app_key = ?3 AND next_at <= ?4 AND (claim_until IS NULL OR claim_until < ?4)
            ORDER BY created_at LIMIT ?5)
         RETURNING request_id, app_key, message_type, recipient_seq, href, attempts, created_at",
    )?;
    let mut out: Vec<PendingLookup> = stmt
        .query_map(
            params![who.owner, now + who.ttl_ms, app_key, now, limit as i64],
            |r| {
                Ok(PendingLookup {
                    request: LookupRequest {
                        request_id: r.get(0)?,
                        app_key: r.get(1)?,
                        message_type: r.get(2)?,
                        recipient_seq: r.get(3)?,
                        href: r.get(4)?,
                    },
                    attempts: r.get(5)?,
                    created_at: r.get(6)?,
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    out.sort_by_key(|l| l.created_at);
    Ok(out)
}

pub(in crate::store::sqlite) fn finish_lookup(
    c: &Connection,
    who: &Claimant,
    request_id: &str,
    result: &LookupResult,
    now: i64,
) -> Result<bool, StoreError> {
    let held: Option<i64> = c
        .query_row(
            "SELECT recipient_seq FROM enrich_lookups WHERE request_id = ?1 AND owner = ?2",
            params![request_id, who.owner],
            |r| r.get(0),
        )
        .optional()?;
    let Some(seq) = held else {
        return Ok(false);
    };
    let cache = |fields: Option<&Enrichment>, expires_at: i64| -> Result<(), StoreError> {
        let text = fields
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        c.prepare_cached(
            "INSERT INTO enrich_cache (request_id, recipient_seq, fields, stored_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (request_id) DO UPDATE SET recipient_seq = excluded.recipient_seq,
               fields = excluded.fields, stored_at = excluded.stored_at,
               expires_at = excluded.expires_at",
        )?
        .execute(params![request_id, seq, text, now, expires_at])?;
        c.prepare_cached("DELETE FROM enrich_lookups WHERE request_id = ?1")?
            .execute([request_id])?;
        Ok(())
    };
    match result {
        LookupResult::Found { fields, expires_at } => cache(Some(fields), *expires_at)?,
        LookupResult::Missing { expires_at, .. } => cache(None, *expires_at)?,
        LookupResult::Retry { at, reason } => {
            c.prepare_cached(
                "UPDATE enrich_lookups SET attempts = attempts + 1, next_at = ?2, owner = NULL,
                   claim_until = NULL, last_error = ?3 WHERE request_id = ?1",
            )?
            .execute(params![request_id, at, reason])?;
        }
    }
    Ok(true)
}

pub(in crate::store::sqlite) fn cached_enrichments(
    c: &Connection,
    request_ids: &[String],
    now: i64,
) -> Result<Vec<CachedEnrichment>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT recipient_seq, fields, stored_at, expires_at FROM enrich_cache
          WHERE request_id = ?1 AND expires_at > ?2",
    )?;
    let mut out = Vec::new();
    let mut ids: Vec<&String> = request_ids.iter().collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let row = stmt
            .query_row(params![id, now], |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .optional()?;
        if let Some((seq, fields, stored_at, expires_at)) = row {
            out.push(CachedEnrichment {
                request_id: id.clone(),
                recipient_seq: seq,
                fields: parse_enrichment(fields.as_deref())?,
                stored_at,
                expires_at,
            });
        }
    }
    Ok(out)
}

pub(in crate::store::sqlite) fn hold_hooks(
    c: &Connection,
    who: &Claimant,
    rows: &[i64],
    until: i64,
) -> Result<usize, StoreError> {
    let mut stmt = c.prepare_cached(
        "UPDATE hooks SET claim_until = MAX(claim_until, ?3)
          WHERE id = ?1 AND owner = ?2 AND state = 'waiting'",
    )?;
    let mut held = 0;
    for row in rows {
        held += stmt.execute(params![row, who.owner, until])?;
    }
    Ok(held)
}

pub(in crate::store::sqlite) fn prune_enrichments(
    c: &Connection,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(c.prepare_cached(
        "DELETE FROM enrich_cache WHERE request_id IN (
           SELECT request_id FROM enrich_cache WHERE expires_at <= ?1 LIMIT ?2)",
    )?
    .execute(params![now, PRUNE_CHUNK])?)
}

pub(in crate::store::sqlite) fn lookup_stats(
    c: &Connection,
    now: i64,
) -> Result<LookupStats, StoreError> {
    Ok(LookupStats {
        pending: c.query_row("SELECT COUNT(*) FROM enrich_lookups", [], |r| r.get(0))?,
        cached: c.query_row(
            "SELECT COUNT(*) FROM enrich_cache WHERE expires_at > ?1",
            [now],
            |r| r.get(0),
        )?,
    })
}
