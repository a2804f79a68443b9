//! Enrichment on PostgreSQL: pending lookups (claimed with `SKIP LOCKED`, like hooks) and the
//! requestId cache shared by every replica.

use deadpool_postgres::Pool;

use super::map;
use crate::store::enrich_types::parse_enrichment;
use crate::store::*;

/// Cache rows deleted per prune call.
const PRUNE_CHUNK: i64 = 5000;

pub(super) async fn request_lookups(
    pool: &Pool,
    lookups: &[LookupRequest],
    now: i64,
) -> Result<usize, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO enrich_lookups (request_id, app_key, message_type, recipient_seq, href,
                                         created_at, next_at)
             SELECT $1, $2, $3, $4, $5, $6, $6
              WHERE NOT EXISTS (SELECT 1 FROM enrich_cache
                                 WHERE request_id = $1 AND expires_at > $6)
             ON CONFLICT (request_id) DO NOTHING",
        )
        .await
        .map_err(map)?;
    let mut filed = 0;
    for l in lookups {
        filed += client
            .execute(
                &stmt,
                &[
                    &l.request_id,
                    &l.app_key,
                    &l.message_type,
                    &l.recipient_seq,
                    &l.href,
                    &now,
                ],
            )
            .await
            .map_err(map)? as usize;
    }
    Ok(filed)
}

pub(super) async fn claim_lookups(
    pool: &Pool,
    who: &Claimant,
    app_key: &str,
    now: i64,
    limit: usize,
) -> Result<Vec<PendingLookup>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let rows = client
        .query(
            "WITH c AS (
               SELECT request_id FROM enrich_lookups
                WHERE app_key = $3 AND next_at <= $4 AND (claim_until IS NULL OR claim_until < $4)
                ORDER BY created_at LIMIT $5 FOR UPDATE SKIP LOCKED)
             UPDATE enrich_lookups l SET owner = $1, claim_until = $2 FROM c
              WHERE l.request_id = c.request_id
             RETURNING l.request_id, l.app_key, l.message_type, l.recipient_seq, l.href,
                       l.attempts, l.created_at",
            &[
                &who.owner,
                &(now + who.ttl_ms),
                &app_key,
                &now,
                &(limit as i64),
            ],
        )
        .await
        .map_err(map)?;
    let mut out: Vec<PendingLookup> = rows
        .iter()
        .map(|r| PendingLookup {
            request: LookupRequest {
                request_id: r.get(0),
                app_key: r.get(1),
                message_type: r.get(2),
                recipient_seq: r.get(3),
                href: r.get(4),
            },
            attempts: r.get(5),
            created_at: r.get(6),
        })
        .collect();
    out.sort_by_key(|l| l.created_at);
    Ok(out)
}

pub(super) async fn finish_lookup(
    pool: &Pool,
    who: &Claimant,
    request_id: &str,
    result: &LookupResult,
    now: i64,
) -> Result<bool, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let held = tx
        .query_opt(
            "SELECT recipient_seq FROM enrich_lookups WHERE request_id = $1 AND owner = $2
             FOR UPDATE",
            &[&request_id, &who.owner],
        )
        .await
        .map_err(map)?;
    let Some(held) = held else {
        return Ok(false);
    };
    let seq: i64 = held.get(0);
    let (fields, expires_at) = match result {
        LookupResult::Found { fields, expires_at } => (
            Some(serde_json::to_string(fields).map_err(|e| StoreError::Corrupt(e.to_string()))?),
            *expires_at,
        ),
        LookupResult::Missing { expires_at, .. } => (None, *expires_at),
        LookupResult::Retry { at, reason } => {
            tx.execute(
                "UPDATE enrich_lookups SET attempts = attempts + 1, next_at = $2, owner = NULL,
                   claim_until = NULL, last_error = $3 WHERE request_id = $1",
                &[&request_id, at, reason],
            )
            .await
            .map_err(map)?;
            tx.commit().await.map_err(map)?;
            return Ok(true);
        }
    };
    tx.execute(
        "INSERT INTO enrich_cache (request_id, recipient_seq, fields, stored_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (request_id) DO UPDATE SET recipient_seq = excluded.recipient_seq,
           fields = excluded.fields, stored_at = excluded.stored_at,
           expires_at = excluded.expires_at",
        &[&request_id, &seq, &fields, &now, &expires_at],
    )
    .await
    .map_err(map)?;
    tx.execute(
        "DELETE FROM enrich_lookups WHERE request_id = $1",
        &[&request_id],
    )
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(true)
}

pub(super) async fn cached_enrichments(
    pool: &Pool,
    request_ids: &[String],
    now: i64,
) -> Result<Vec<CachedEnrichment>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let rows = client
        .query(
            "SELECT request_id, recipient_seq, fields, stored_at, expires_at FROM enrich_cache
              WHERE request_id = ANY($1) AND expires_at > $2",
            &[&request_ids, &now],
        )
        .await
        .map_err(map)?;
    rows.iter()
        .map(|r| {
            Ok(CachedEnrichment {
                request_id: r.get(0),
                recipient_seq: r.get(1),
                fields: parse_enrichment(r.get::<_, Option<&str>>(2))?,
                stored_at: r.get(3),
                expires_at: r.get(4),
            })
        })
        .collect()
}

pub(super) async fn hold_hooks(
    pool: &Pool,
    who: &Claimant,
    rows: &[i64],
    until: i64,
) -> Result<usize, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let n = client
        .execute(
            "UPDATE hooks SET claim_until = GREATEST(claim_until, $3)
              WHERE id = ANY($1) AND owner = $2 AND state = 'waiting'",
            &[&rows, &who.owner, &until],
        )
        .await
        .map_err(map)?;
    Ok(n as usize)
}

pub(super) async fn prune_enrichments(pool: &Pool, now: i64) -> Result<usize, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let n = client
        .execute(
            "DELETE FROM enrich_cache WHERE request_id IN (
               SELECT request_id FROM enrich_cache WHERE expires_at <= $1 LIMIT $2)",
            &[&now, &PRUNE_CHUNK],
        )
        .await
        .map_err(map)?;
    Ok(n as usize)
}

pub(super) async fn lookup_stats(pool: &Pool, now: i64) -> Result<LookupStats, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let row = client
        .query_one(
            "SELECT (SELECT COUNT(*) FROM enrich_lookups),
                    (SELECT COUNT(*) FROM enrich_cache WHERE expires_at > $1)",
            &[&now],
        )
        .await
        .map_err(map)?;
    Ok(LookupStats {
        pending: row.get(0),
        cached: row.get(1),
    })
}
