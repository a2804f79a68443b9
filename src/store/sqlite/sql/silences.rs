//! Silences on SQLite: a small table read whole by every dispatcher pass that refreshes its
//! cache (there are a handful of live silences, never thousands).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::*;

fn silence_from(r: &Row<'_>) -> rusqlite::Result<(StoredSilence, String)> {
    Ok((
        StoredSilence {
            id: r.get(0)?,
            matchers: Vec::new(),
            starts_at: r.get(2)?,
            ends_at: r.get(3)?,
            comment: r.get(4)?,
            author: r.get(5)?,
            created_at: r.get(6)?,
        },
        r.get(1)?,
    ))
}

fn with_matchers((mut s, text): (StoredSilence, String)) -> Result<StoredSilence, StoreError> {
    s.matchers = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("matchers of silence {}: {e}", s.id)))?;
    Ok(s)
}

pub(in crate::store::sqlite) fn add_silence(
    c: &Connection,
    s: &NewSilence,
) -> Result<StoredSilence, StoreError> {
    let matchers =
        serde_json::to_string(&s.matchers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    c.prepare_cached(
        "INSERT INTO silences (v, matchers, starts_at, ends_at, comment, author, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        FORMAT_VERSION,
        matchers,
        s.starts_at,
        s.ends_at,
        s.comment,
        s.author,
        s.created_at
    ])?;
    Ok(StoredSilence {
        id: c.last_insert_rowid(),
        matchers: s.matchers.clone(),
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        comment: s.comment.clone(),
        author: s.author.clone(),
        created_at: s.created_at,
    })
}

pub(in crate::store::sqlite) fn silences(
    c: &Connection,
    now: i64,
    ended_since: Option<i64>,
) -> Result<Vec<StoredSilence>, StoreError> {
    let since = ended_since.map_or(now + 1, |t| t.min(now + 1));
    let mut stmt = c.prepare_cached(
        "SELECT id, matchers, starts_at, ends_at, comment, author, created_at FROM silences
         WHERE ends_at > ?1 OR ends_at >= ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![now, since], silence_from)?;
    rows.map(|r| with_matchers(r?)).collect()
}

pub(in crate::store::sqlite) fn expire_silence(
    c: &Connection,
    id: i64,
    now: i64,
) -> Result<Expired, StoreError> {
    let ends: Option<i64> = c
        .prepare_cached("SELECT ends_at FROM silences WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    Ok(match ends {
        None => Expired::Unknown,
        Some(at) if at <= now => Expired::Already(at),
        Some(_) => {
            c.prepare_cached("UPDATE silences SET ends_at = ?2 WHERE id = ?1")?
                .execute(params![id, now])?;
            Expired::Now
        }
    })
}
