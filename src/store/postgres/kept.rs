//! How many hooks are kept unrouted and quarantined (migration 6's `inbox_counts`), changed
//! in the transactions that move hooks into or out of those states, so `/metrics` and
//! `/readyz` read a few counter rows instead of counting `hooks`.
//!
//! Invariants:
//! - Each connection adds to counter rows of its own (keyed by its server process), so no two
//!   transactions ever wait on one counter row: the counts add no lock waits and no deadlock,
//!   wherever in a transaction they are changed. The figure is the sum of the rows.
//! - Pruning (one replica at a time) folds the rows of connections that are gone into its
//!   own, so the table stays about as small as the set of live connections; a live
//!   connection's rows are never touched by another.
//! - Counting starts with migration 6: hooks moved by a server of an older version still
//!   running against the database are not counted (docs/replicas.md: upgrading).

use deadpool_postgres::Transaction;

use super::map;
use crate::store::StoreError;

/// A `WITH` item (with its leading comma) that adds the kept hooks among the rows of `rows`
/// (an earlier `WITH` item with a `state` column) to this connection's counters, in the
/// statement that moved them.
pub(super) fn counted(rows: &str) -> String {
    format!(
        ", counted AS (INSERT INTO inbox_counts AS c (state, shard, n)
           SELECT state, pg_backend_pid(), COUNT(*) FROM {rows}
           WHERE state IN ('unrouted', 'quarantined') GROUP BY state
           ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n)"
    )
}

/// Hooks a transaction moved into (positive) or out of (negative) the kept states.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Kept {
    pub quarantined: i64,
    pub unrouted: i64,
}

impl Kept {
    /// Adds `n` hooks (negative: removed) in `state`, if it is a kept state.
    pub(super) fn add(&mut self, state: &str, n: i64) {
        match state {
            "quarantined" => self.quarantined += n,
            "unrouted" => self.unrouted += n,
            _ => {}
        }
    }

    /// Writes the change into `tx`.
    pub(super) async fn save(self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let mut states: Vec<&str> = Vec::new();
        let mut deltas: Vec<i64> = Vec::new();
        for (state, n) in [
            ("quarantined", self.quarantined),
            ("unrouted", self.unrouted),
        ] {
            if n != 0 {
                states.push(state);
                deltas.push(n);
            }
        }
        if states.is_empty() {
            return Ok(());
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO inbox_counts AS c (state, shard, n)
                 SELECT s, pg_backend_pid(), d FROM unnest($1::text[], $2::bigint[]) AS v(s, d)
                 ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n",
            )
            .await
            .map_err(map)?;
        tx.execute(&stmt, &[&states, &deltas]).await.map_err(map)?;
        Ok(())
    }
}

/// Counts of rows by state, as `SELECT state, COUNT(*) ... GROUP BY state` returns them.
pub(super) fn tally(rows: &[tokio_postgres::Row], sign: i64) -> Kept {
    let mut kept = Kept::default();
    for r in rows {
        kept.add(r.get::<_, &str>(0), sign * r.get::<_, i64>(1));
    }
    kept
}

/// The kept hooks, summed over the shards.
pub(super) async fn read(client: &deadpool_postgres::Client) -> Result<Kept, StoreError> {
    let rows = client
        .query(
            "SELECT state, SUM(n)::bigint FROM inbox_counts GROUP BY state",
            &[],
        )
        .await
        .map_err(map)?;
    Ok(tally(&rows, 1))
}

/// Folds the counter rows of connections that are gone into this one's. A live connection's
/// rows are left alone: deleting them would make its next count wait for this transaction.
pub(super) async fn fold(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "WITH gone AS (DELETE FROM inbox_counts WHERE (state, shard) IN
           (SELECT state, shard FROM inbox_counts
            WHERE shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
            FOR UPDATE SKIP LOCKED) RETURNING state, n)
         INSERT INTO inbox_counts AS c (state, shard, n)
           SELECT state, pg_backend_pid(), SUM(n) FROM gone GROUP BY state
           ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n",
        &[],
    )
    .await
    .map_err(map)?;
    Ok(())
}
