//! Pruning the dedup keys by a sweep in key order instead of an index by time.
//!
//! `seen` has no index on `seen_at` (schema 6): that index was a second B-tree insert for
//! every hook, and the writer alone took 100-hook POSTs 11-28% faster without it (see
//! docs/performance.md). So pruning walks the keys in their own order, a chunk per prune
//! call, deleting those last seen before the dedup window, and carries on where it stopped.
//!
//! Invariants:
//! - Dedup never depends on the sweep: a key older than the window counts as fresh at
//!   ingest whether or not it has been swept yet (`ingest`'s upsert compares `seen_at`).
//!   The sweep only gives the space back.
//! - The position is `meta.seen_sweep_after`, written in the transaction that deletes the
//!   chunk: a rolled-back call (a failed batch, a failed commit) leaves it where it was, and
//!   a restart goes on from it.
//! - A prune round sweeps until it has come round to where it began, or at most
//!   [`ROUND_KEYS`] keys; the next round goes on from there. So a key outlives the window by
//!   at most a few rounds, and a round's work is bounded however many keys are kept. A round
//!   is one set of cutoffs, and ends anyway once no call came for [`ROUND_GAP`] (the prune
//!   loop's calls of one round come back to back; its rounds are minutes apart).

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{PruneBefore, StoreError};

/// Keys a prune call looks at (and may delete), so the write lock is never held for long.
const CHUNK_KEYS: i64 = 5000;

/// Keys a prune round looks at at most (a thousand calls).
const ROUND_KEYS: usize = 5_000_000;

/// A pause between calls this long starts a new round.
const ROUND_GAP: Duration = Duration::from_secs(60);

/// What a round has done so far (memory only: a restart starts a new round).
#[derive(Debug)]
pub(in crate::store::sqlite) struct Sweep {
    /// Keys a call looks at ([`CHUNK_KEYS`]; tests use fewer).
    chunk: i64,
    /// Keys a round looks at at most ([`ROUND_KEYS`]).
    round_keys: usize,
    /// The round's cutoffs: new ones start a new round.
    round: Option<PruneBefore>,
    /// When the last call came.
    last_call: Option<Instant>,
    /// Keys looked at in this round.
    looked: usize,
    /// The position this round began at.
    began: String,
    /// Whether this round has passed the last key and gone on from the first.
    wrapped: bool,
    /// Whether this round came round to where it began.
    done: bool,
    /// Whether this round's prune found nothing else to delete (see [`Sweep::rest_done`]).
    rest_done: bool,
}

impl Default for Sweep {
    fn default() -> Sweep {
        Sweep::new(CHUNK_KEYS, ROUND_KEYS)
    }
}

impl Sweep {
    pub(in crate::store::sqlite) fn new(chunk: i64, round_keys: usize) -> Sweep {
        Sweep {
            chunk: chunk.max(1),
            round_keys,
            round: None,
            last_call: None,
            looked: 0,
            began: String::new(),
            wrapped: false,
            done: false,
            rest_done: false,
        }
    }

    /// Whether the rest of this round's prune (hooks, deliveries, rejected hooks) has found
    /// nothing more to delete. Those queries scan their tables when nothing is old enough,
    /// so the calls that only carry the sweep on skip them.
    pub(in crate::store::sqlite) fn rest_done(&self) -> bool {
        self.rest_done
    }

    pub(in crate::store::sqlite) fn set_rest_done(&mut self) {
        self.rest_done = true;
    }
}

/// What one call did: keys deleted and keys looked at (a whole chunk per call that swept;
/// 0 once the round is over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(in crate::store::sqlite) struct Swept {
    pub deleted: usize,
    pub looked: usize,
}

/// The last key swept; empty at the start of the key space (keys never are).
fn position(c: &Connection) -> Result<String, StoreError> {
    Ok(
        c.prepare_cached("SELECT value FROM meta WHERE key = 'seen_sweep_after'")?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or_default(),
    )
}

/// Sweeps the next chunk of keys, deleting those last seen before `round.seen`; `now` is
/// the time of the call (for [`ROUND_GAP`]).
pub(in crate::store::sqlite) fn sweep(
    c: &Connection,
    round: PruneBefore,
    at: &mut Sweep,
    now: Instant,
) -> Result<Swept, StoreError> {
    let paused = at
        .last_call
        .is_none_or(|t| now.saturating_duration_since(t) >= ROUND_GAP);
    at.last_call = Some(now);
    let after = position(c)?;
    if paused || at.round != Some(round) {
        at.round = Some(round);
        at.looked = 0;
        at.done = false;
        at.rest_done = false;
        at.wrapped = false;
        at.began = after.clone();
    }
    if at.done || at.looked >= at.round_keys {
        return Ok(Swept::default());
    }
    // The last key of this chunk; none when fewer keys are left than a chunk.
    let last: Option<String> = c
        .prepare_cached("SELECT key FROM seen WHERE key > ?1 ORDER BY key LIMIT 1 OFFSET ?2")?
        .query_row(params![after, at.chunk - 1], |r| r.get(0))
        .optional()?;
    let deleted = match &last {
        Some(last) => c
            .prepare_cached("DELETE FROM seen WHERE key > ?1 AND key <= ?2 AND seen_at < ?3")?
            .execute(params![after, last, round.seen])?,
        None => c
            .prepare_cached("DELETE FROM seen WHERE key > ?1 AND seen_at < ?2")?
            .execute(params![after, round.seen])?,
    };
    let next = match last {
        Some(last) => {
            at.done = at.wrapped && last >= at.began;
            last
        }
        None => {
            at.done = at.began.is_empty() || at.wrapped;
            at.wrapped = true;
            String::new()
        }
    };
    c.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('seen_sweep_after', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([next])?;
    let looked = usize::try_from(at.chunk).unwrap_or(usize::MAX);
    at.looked = at.looked.saturating_add(looked);
    Ok(Swept { deleted, looked })
}
