//! The PostgreSQL store: several replicas share one database. Built on tokio-postgres with a
//! deadpool pool and rustls (no OpenSSL).
//!
//! Invariants (beyond the trait's):
//! - Ingest is group-committed per replica: POSTs arriving while a commit runs share the next
//!   transaction (a few statements for the whole batch), so the hot path pays one commit per
//!   batch, not per request.
//! - Claims take rows with `FOR UPDATE SKIP LOCKED` in short transactions; nothing holds a
//!   transaction open across an HTTP post (no held xmin horizon, no lock held by a dead
//!   replica beyond its session).
//! - Rows that replicas contend for (digest groups, destination pace rows, dedup keys) are
//!   locked in a consistent order, so concurrent replicas wait instead of deadlocking.
//! - Schema changes are versioned migrations applied under a transaction-scoped advisory
//!   lock, so replicas starting at once migrate exactly once.
//! - Every operation is bounded by `store.commit_timeout`, on the client and (as
//!   `statement_timeout`) on the server. No message names the password.

mod connect;
mod enrich;
mod groups;
mod inbox;
mod kept;
mod outbox;
mod rates;
mod silences;
mod threads;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;

pub use connect::{describe_url, parse as parse_url};

use super::*;
use crate::config::StoreConfig;

/// Highest schema migration this build knows.
pub const SCHEMA_VERSION: i64 = 6;
const MIGRATIONS: [&str; 6] = [
    include_str!("schema_1.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
    include_str!("schema_5.sql"),
    include_str!("schema_6.sql"),
];
/// Serialises migrations across replicas (any constant unique to bizrelay).
const MIGRATION_LOCK: i64 = 0x6269_7a72_656c_6179; // "bizrelay"
/// POSTs committed together at most.
const MAX_BATCH: usize = 256;
/// Rows deleted per table per prune call.
const PRUNE_CHUNK: i64 = 5000;

pub(super) fn map(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn token() -> i64 {
    rand::random::<i64>() & i64::MAX
}

pub(super) fn hook_from(r: &Row, cache: &mut EnvelopeCache) -> Result<StoredHook, StoreError> {
    let row: i64 = r.get(0);
    let envelope = cache.get(r.get(3), row)?;
    Ok(StoredHook {
        row,
        received_at: r.get(1),
        raw: r.get::<_, &str>(2).into(),
        envelope,
        sent_to: r
            .get::<_, Option<&str>>(4)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default(),
        failures: r.get(5),
        parsed: None,
    })
}

type IngestJob = (NewPost, oneshot::Sender<Result<IngestOutcome, StoreError>>);

pub struct PostgresStore {
    pool: Pool,
    describe: String,
    commit_timeout: Duration,
    ingest: Mutex<Option<mpsc::Sender<IngestJob>>>,
}

impl PostgresStore {
    /// Connects, creates or migrates the schema (serve), and starts the ingest batcher.
    pub async fn open(url: &str, cfg: &StoreConfig, mode: Mode) -> Result<Self, StoreError> {
        let target =
            connect::parse(url).map_err(|e| StoreError::Refused(format!("store.url {e}")))?;
        let pool = connect::pool(&target, cfg)?;
        let unreachable = |e: &dyn std::fmt::Display| {
            StoreError::Refused(format!(
                "cannot reach {}: {e} (is PostgreSQL running there, and do the user and \
                 password in store.url work?)",
                target.describe
            ))
        };
        let mut client = tokio::time::timeout(cfg.commit_timeout, pool.get())
            .await
            .map_err(|_| unreachable(&"no answer in time"))?
            .map_err(|e| unreachable(&e))?;
        match mode {
            Mode::Serve => migrate(&mut client, &target.describe).await?,
            Mode::Tool => {
                let found = schema_version(&client).await.map_err(|e| unreachable(&e))?;
                match found {
                    None => {
                        return Err(StoreError::Refused(format!(
                            "{} has no bizrelay tables yet (start `bizrelay serve` once to create them)",
                            target.describe
                        )));
                    }
                    Some(v) if v > SCHEMA_VERSION => {
                        return Err(StoreError::NewerSchema {
                            found: v,
                            known: SCHEMA_VERSION,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        drop(client);
        let dedup_window_ms = i64::try_from(cfg.dedup_window.as_millis()).unwrap_or(i64::MAX);
        let (tx, rx) = mpsc::channel::<IngestJob>(4096);
        tokio::spawn(batcher(pool.clone(), rx, dedup_window_ms));
        Ok(PostgresStore {
            pool,
            describe: target.describe,
            commit_timeout: cfg.commit_timeout,
            ingest: Mutex::new(Some(tx)),
        })
    }

    async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.commit_timeout, work)
            .await
            .map_err(|_| {
                StoreError::Timeout(humantime::format_duration(self.commit_timeout).to_string())
            })?
    }
}

async fn schema_version(
    client: &deadpool_postgres::Client,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('bizrelay_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_one("SELECT MAX(version) FROM bizrelay_schema", &[])
        .await?
        .get(0))
}

/// Applies the migrations this database lacks, one replica at a time.
async fn migrate(client: &mut deadpool_postgres::Client, describe: &str) -> Result<(), StoreError> {
    let fail = |e: tokio_postgres::Error| {
        StoreError::Refused(format!(
            "cannot create or migrate the schema in {describe}: {e}"
        ))
    };
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS bizrelay_schema (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(fail)?;
    let found: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM bizrelay_schema", &[])
        .await
        .map_err(fail)?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= found {
            continue;
        }
        tx.batch_execute(sql).await.map_err(fail)?;
        tx.execute(
            "INSERT INTO bizrelay_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(fail)?;
        tracing::info!(store = %describe, version, "applied a schema migration");
    }
    tx.commit().await.map_err(fail)
}

/// Gathers the POSTs waiting while a commit runs into the next transaction (group commit).
/// When a batch fails as a whole, its POSTs are tried one by one, so one bad POST costs only
/// itself.
async fn batcher(pool: Pool, mut rx: mpsc::Receiver<IngestJob>, dedup_window_ms: i64) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Moved, not copied: a POST holds its hooks' JSON (and, routed at ingest, its
        // rendered deliveries); the one-by-one retry reads the same vector.
        let (posts, replies): (Vec<NewPost>, Vec<_>) = jobs.into_iter().unzip();
        match commit_posts(&pool, &posts, dedup_window_ms).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) if posts.len() == 1 => {
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
            Err(_) => {
                for (post, reply) in posts.iter().zip(replies) {
                    let one = commit_posts(&pool, std::slice::from_ref(post), dedup_window_ms)
                        .await
                        .map(|mut o| o.remove(0));
                    let _ = reply.send(one);
                }
            }
        }
    }
}

async fn commit_posts(
    pool: &Pool,
    posts: &[NewPost],
    dedup_window_ms: i64,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let outcomes = inbox::ingest(&tx, posts, dedup_window_ms).await?;
    tx.commit().await.map_err(map)?;
    Ok(outcomes)
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn ingest(&self, post: NewPost) -> Result<IngestOutcome, StoreError> {
        let sender = self
            .ingest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        self.timed(async move {
            let (reply, rx) = oneshot::channel();
            sender
                .send((post, reply))
                .await
                .map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
        .await
    }

    async fn claim_hooks(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<StoredHook>, StoreError> {
        self.timed(inbox::claim_hooks(&self.pool, who, now, limit))
            .await
    }

    async fn commit_dispatch(
        &self,
        who: &Claimant,
        batch: DispatchBatch,
        rules: &Rules,
    ) -> Result<DispatchCommit, StoreError> {
        self.timed(inbox::commit_dispatch(&self.pool, who, &batch, rules))
            .await
    }

    async fn fail_dispatch(
        &self,
        who: &Claimant,
        failure: RoutingFailure,
    ) -> Result<Vec<i64>, StoreError> {
        self.timed(inbox::fail_dispatch(&self.pool, who, &failure))
            .await
    }

    async fn reroute(&self, which: Reroute, _now: i64) -> Result<usize, StoreError> {
        self.timed(inbox::reroute(&self.pool, &which)).await
    }

    async fn hooks_in(
        &self,
        state: HookState,
        limit: usize,
    ) -> Result<Vec<ListedHook>, StoreError> {
        self.timed(inbox::hooks_in(&self.pool, state, limit)).await
    }

    async fn inbox_stats(&self) -> Result<InboxStats, StoreError> {
        self.timed(inbox::inbox_stats(&self.pool)).await
    }

    async fn rejected(&self, selection: &Selection) -> Result<Vec<RejectedHook>, StoreError> {
        self.timed(inbox::rejected(&self.pool, selection)).await
    }

    async fn purge_rejected(&self, selection: &Selection) -> Result<usize, StoreError> {
        self.timed(inbox::purge_rejected(&self.pool, selection))
            .await
    }

    async fn claim_groups(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueGroup>, StoreError> {
        self.timed(groups::claim_groups(&self.pool, who, now, limit))
            .await
    }

    async fn commit_flush(
        &self,
        who: &Claimant,
        flush: Flush,
        rules: &Rules,
    ) -> Result<bool, StoreError> {
        self.timed(groups::commit_flush(&self.pool, who, &flush, rules))
            .await
    }

    async fn next_flush_at(&self) -> Result<Option<i64>, StoreError> {
        self.timed(groups::next_flush_at(&self.pool)).await
    }

    async fn claim_rate_series(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueSeries>, StoreError> {
        self.timed(rates::claim_rate_series(&self.pool, who, now, limit))
            .await
    }

    async fn commit_rate(&self, who: &Claimant, commit: RateCommit) -> Result<bool, StoreError> {
        self.timed(rates::commit_rate(&self.pool, who, &commit))
            .await
    }

    async fn group_timing(
        &self,
        route: &str,
        group_key: &str,
    ) -> Result<Option<GroupTiming>, StoreError> {
        self.timed(groups::group_timing(&self.pool, route, group_key))
            .await
    }

    async fn lease_delivery(
        &self,
        destination: &str,
        who: &Claimant,
        now: i64,
        pacer: &Pacer,
    ) -> Result<LeaseOutcome, StoreError> {
        self.timed(outbox::lease_delivery(
            &self.pool,
            destination,
            who,
            now,
            pacer,
        ))
        .await
    }

    async fn record_attempt(
        &self,
        lease: &Lease,
        attempt: Attempt,
        pause: Option<Pause>,
    ) -> Result<bool, StoreError> {
        self.timed(outbox::record_attempt(
            &self.pool,
            lease,
            &attempt,
            pause.as_ref(),
        ))
        .await
    }

    async fn dead_letters(&self, destination: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        self.timed(outbox::dead_letters(&self.pool, destination))
            .await
    }

    async fn dead_sources(
        &self,
        selection: &Selection,
    ) -> Result<Vec<(DeadLetter, DeadSource)>, StoreError> {
        self.timed(outbox::dead_sources(&self.pool, selection))
            .await
    }

    async fn requeue(
        &self,
        items: Vec<(i64, Option<String>)>,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.timed(outbox::requeue(&self.pool, &items, now)).await
    }

    async fn purge(&self, selection: &Selection) -> Result<usize, StoreError> {
        self.timed(outbox::purge(&self.pool, selection)).await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStat>, StoreError> {
        self.timed(outbox::queue_stats(&self.pool)).await
    }

    async fn dead_letter_destinations(
        &self,
        destinations: Vec<String>,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.timed(outbox::dead_letter_destinations(
            &self.pool,
            &destinations,
            now,
        ))
        .await
    }

    async fn queued_destinations(&self) -> Result<Vec<String>, StoreError> {
        self.timed(outbox::queued_destinations(&self.pool)).await
    }

    async fn prune(&self, before: PruneBefore) -> Result<PruneStats, StoreError> {
        self.timed(prune(&self.pool, before)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            let client = self.pool.get().await.map_err(map)?;
            client.execute("SELECT 1", &[]).await.map_err(map)?;
            Ok(())
        })
        .await
    }

    async fn close(&self) {
        self.ingest.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.pool.close();
    }

    async fn thread(&self, key: &ThreadKey) -> Result<Option<Thread>, StoreError> {
        self.timed(threads::thread(&self.pool, key)).await
    }

    async fn save_thread(&self, lease: &Lease, thread: &Thread) -> Result<bool, StoreError> {
        self.timed(threads::save_thread(&self.pool, lease, thread))
            .await
    }

    async fn threads(&self, destination: Option<&str>) -> Result<Vec<Thread>, StoreError> {
        self.timed(threads::threads(&self.pool, destination)).await
    }

    async fn forget_thread(&self, key: &ThreadKey) -> Result<bool, StoreError> {
        self.timed(threads::forget_thread(&self.pool, key)).await
    }

    async fn prune_threads(&self, before: i64) -> Result<usize, StoreError> {
        self.timed(threads::prune_threads(&self.pool, before)).await
    }

    async fn add_silence(&self, silence: NewSilence) -> Result<StoredSilence, StoreError> {
        self.timed(silences::add_silence(&self.pool, &silence))
            .await
    }

    async fn silences(
        &self,
        now: i64,
        ended_since: Option<i64>,
    ) -> Result<Vec<StoredSilence>, StoreError> {
        self.timed(silences::silences(&self.pool, now, ended_since))
            .await
    }

    async fn expire_silence(&self, id: i64, now: i64) -> Result<Expired, StoreError> {
        self.timed(silences::expire_silence(&self.pool, id, now))
            .await
    }

    async fn request_lookups(
        &self,
        lookups: Vec<LookupRequest>,
        now: i64,
    ) -> Result<usize, StoreError> {
        if lookups.is_empty() {
            return Ok(0);
        }
        self.timed(enrich::request_lookups(&self.pool, &lookups, now))
            .await
    }

    async fn claim_lookups(
        &self,
        who: &Claimant,
        app_key: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<PendingLookup>, StoreError> {
        self.timed(enrich::claim_lookups(&self.pool, who, app_key, now, limit))
            .await
    }

    async fn finish_lookup(
        &self,
        who: &Claimant,
        request_id: &str,
        result: LookupResult,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.timed(enrich::finish_lookup(
            &self.pool, who, request_id, &result, now,
        ))
        .await
    }

    async fn cached_enrichments(
        &self,
        request_ids: Vec<String>,
        now: i64,
    ) -> Result<Vec<CachedEnrichment>, StoreError> {
        if request_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.timed(enrich::cached_enrichments(&self.pool, &request_ids, now))
            .await
    }

    async fn hold_hooks(
        &self,
        who: &Claimant,
        rows: Vec<i64>,
        until: i64,
    ) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.timed(enrich::hold_hooks(&self.pool, who, &rows, until))
            .await
    }

    async fn prune_enrichments(&self, now: i64) -> Result<usize, StoreError> {
        self.timed(enrich::prune_enrichments(&self.pool, now)).await
    }

    async fn lookup_stats(&self, now: i64) -> Result<LookupStats, StoreError> {
        self.timed(enrich::lookup_stats(&self.pool, now)).await
    }
}

/// Deletes one chunk of what is past its keep time. Only one replica prunes at a time (a
/// transaction-scoped advisory lock); the others skip.
async fn prune(pool: &Pool, before: PruneBefore) -> Result<PruneStats, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let mine: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&(MIGRATION_LOCK + 1)],
        )
        .await
        .map_err(map)?
        .get(0);
    if !mine {
        return Ok(PruneStats::default());
    }
    let n = |r: u64| r as usize;
    let seen = tx
        .execute(
            "DELETE FROM seen WHERE key IN (SELECT key FROM seen WHERE seen_at < $1 LIMIT $2)",
            &[&before.seen, &PRUNE_CHUNK],
        )
        .await
        .map_err(map)?;
    let deliveries = tx
        .execute(
            "DELETE FROM deliveries WHERE id IN
               (SELECT id FROM deliveries WHERE state = 'done' AND done_at < $1 LIMIT $2)",
            &[&before.delivered, &PRUNE_CHUNK],
        )
        .await
        .map_err(map)?;
    let gone = tx
        .query(
            "WITH gone AS (DELETE FROM hooks WHERE id IN (SELECT h.id FROM hooks h
               WHERE ((h.state = 'routed' AND h.received_at < $1)
                   OR (h.state IN ('unrouted', 'quarantined') AND h.received_at < $2))
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.hook_row = h.id)
                 AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.hook_row = h.id)
               LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING state)
             SELECT state, COUNT(*) FROM gone GROUP BY state",
            &[&before.delivered, &before.unrouted, &PRUNE_CHUNK],
        )
        .await
        .map_err(map)?;
    let hooks: i64 = gone.iter().map(|r| r.get::<_, i64>(1)).sum();
    tx.execute(
        "DELETE FROM digests WHERE id IN (SELECT g.id FROM digests g WHERE g.created_at < $1
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.digest_id = g.id) LIMIT $2)",
        &[&before.delivered, &PRUNE_CHUNK],
    )
    .await
    .map_err(map)?;
    for sql in PRUNE_ONCALL {
        tx.execute(sql, &[&before.delivered]).await.map_err(map)?;
    }
    tx.execute(PRUNE_SILENCES, &[&before.unrouted])
        .await
        .map_err(map)?;
    let rejected = tx
        .execute(
            "DELETE FROM rejected WHERE id IN (SELECT id FROM rejected WHERE received_at < $1 LIMIT $2)",
            &[&before.seen, &PRUNE_CHUNK],
        )
        .await
        .map_err(map)?;
    kept::tally(&gone, -1).save(&tx).await?;
    kept::fold(&tx).await?;
    tx.commit().await.map_err(map)?;
    Ok(PruneStats {
        seen: n(seen),
        keys_looked_at: 0,
        hooks: hooks as usize,
        deliveries: n(deliveries),
        rejected: n(rejected),
    })
}
