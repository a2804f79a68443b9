//! Durable state as a multi-consumer work queue: the inbox of received hooks (with dedup),
//! digest groups, rate-alert counters and series, the outbox of deliveries with shared pacing,
//! dead letters, and silences. The [`Store`]
//! trait is the seam; [`sqlite`] (one machine, the default) and [`postgres`] (several
//! replicas) implement it, and one conformance suite (`tests/it/conformance.rs`) runs on both.
//!
//! Invariants every implementation keeps:
//! - `ingest` returns only after the accepted hooks are durable; a hook key seen within the
//!   dedup window (by any consumer) is counted as a duplicate and not stored again.
//! - Work is handed out under claims (hooks, digest groups) and leases (deliveries), each
//!   with an owner and an expiry. Two consumers never hold the same item at once; an expired
//!   claim is taken over. An outcome is recorded only while its claim is still held, so a
//!   consumer that lost its claim (it was presumed dead) changes nothing.
//! - Every claimed hook is routed in one transaction with its deliveries and group
//!   memberships, or not at all; there is no cursor, so hooks committed out of order are
//!   never skipped. Each hook gets at most one delivery per destination, ever (`sent_to`),
//!   also when it is routed again (`reroute`).
//! - A digest flush (digest row, deliveries, removal of exactly the members marked by its
//!   claim, group timing) is one transaction, so every grouped hook is in exactly one digest.
//!   A group quiet past its `resolve_at` is claimed the same way for its resolved message.
//! - Rate counters are summed in the routing commit, only for hooks whose claim held; a
//!   series' window is judged once, after it closed, under a claim, and its new state, alert
//!   deliveries and the dropping of counters no longer needed are one transaction.
//! - At most one lease per destination is live at a time, and leases are granted only when
//!   the destination's shared pace row admits a send: all consumers together keep the pace,
//!   and a 429 seen by one pauses all.
//! - Domain rules are not the store's: digest timing and pacing are pure functions that
//!   callers pass in ([`Rules`], [`Pacer`]), applied inside the transaction that reads and
//!   writes the row (several replicas would otherwise race between the two).
//! - No engine's error type crosses the trait ([`StoreError`] carries text).
//! - Rows carry a format version ([`FORMAT_VERSION`]).

pub(crate) mod enrich_types;
mod open;
pub mod postgres;
pub(crate) mod rate_types;
pub mod sqlite;
mod types;

use async_trait::async_trait;

pub use enrich_types::*;
pub use open::{Mode, open};
pub use rate_types::*;
pub use types::*;

/// Version written into every hook, delivery and digest row.
pub const FORMAT_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed or cannot be reached (the webhook answers 503, work is retried).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A commit did not finish within `store.commit_timeout` (a stalled disk or database).
    #[error("the store did not answer within {0} (stalled disk or database?)")]
    Timeout(String),
    #[error("cannot create the store folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("the store was written by a newer bizrelay (schema {found}, this build knows {known})")]
    NewerSchema { found: i64, known: i64 },
    /// Opening or using the store was refused for a reason the operator must act on; the
    /// text says what to do.
    #[error("{0}")]
    Refused(String),
    #[error("the store is shut down")]
    Closed,
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// Who claims work, and for how long a claim lasts before another consumer may take it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    /// This replica's id (unique per running process).
    pub owner: String,
    pub ttl_ms: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// What this store is, for operators: the file, or the database without its password.
    fn describe(&self) -> String;

    // --- Inbox ---

    /// Stores a POST's hooks durably; returns after the commit.
    async fn ingest(&self, post: NewPost) -> Result<IngestOutcome, StoreError>;
    /// Claims up to `limit` hooks waiting to be routed that nobody holds (unclaimed, or whose
    /// claim expired; a live claim, `who`'s own included, is left alone), oldest first.
    async fn claim_hooks(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<StoredHook>, StoreError>;
    /// Records the routing of claimed hooks atomically. Hooks no longer claimed by `who` are
    /// left out whole (with their deliveries and memberships) and reported as `lost`.
    async fn commit_dispatch(
        &self,
        who: &Claimant,
        batch: DispatchBatch,
        rules: &Rules,
    ) -> Result<DispatchCommit, StoreError>;
    /// Records that routing these claimed hooks failed; a hook that failed `quarantine_after`
    /// times is quarantined (kept, not routed again until `reroute`). Returns the quarantined.
    async fn fail_dispatch(
        &self,
        who: &Claimant,
        failure: RoutingFailure,
    ) -> Result<Vec<i64>, StoreError>;
    /// Puts stored hooks back in the inbox to be routed with the current config.
    async fn reroute(&self, which: Reroute, now: i64) -> Result<usize, StoreError>;
    /// Stored hooks in a state, newest first (for `quarantine list`, `reroute --dry-run`).
    async fn hooks_in(&self, state: HookState, limit: usize)
    -> Result<Vec<ListedHook>, StoreError>;
    async fn inbox_stats(&self) -> Result<InboxStats, StoreError>;
    /// Hooks that could not be understood, newest first.
    async fn rejected(&self, selection: &Selection) -> Result<Vec<RejectedHook>, StoreError>;
    async fn purge_rejected(&self, selection: &Selection) -> Result<usize, StoreError>;

    // --- Digest groups ---

    /// Claims due groups and marks their current members as this digest's.
    async fn claim_groups(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueGroup>, StoreError>;
    /// Commits a digest of a claimed group; false when the claim was lost (nothing written).
    async fn commit_flush(
        &self,
        who: &Claimant,
        flush: Flush,
        rules: &Rules,
    ) -> Result<bool, StoreError>;
    /// When the next digest, resolved notice or rate window falls due, if any.
    async fn next_flush_at(&self) -> Result<Option<i64>, StoreError>;
    /// A group's timing (for `bizrelay route`, metrics).
    async fn group_timing(
        &self,
        route: &str,
        group_key: &str,
    ) -> Result<Option<GroupTiming>, StoreError>;

    // --- Rate alerts ---

    /// Claims series whose next window is due for judging (closed for [`RATE_GRACE_MS`]),
    /// with that window's counts and the previous window's.
    async fn claim_rate_series(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueSeries>, StoreError>;
    /// Commits a judged window of a claimed series; false when the claim was lost (nothing
    /// written).
    async fn commit_rate(&self, who: &Claimant, commit: RateCommit) -> Result<bool, StoreError>;

    // --- Outbox ---

    /// Leases the destination's oldest due delivery, if the destination has no live lease
    /// and its pace admits a send now (see [`LeaseOutcome`]).
    async fn lease_delivery(
        &self,
        destination: &str,
        who: &Claimant,
        now: i64,
        pacer: &Pacer,
    ) -> Result<LeaseOutcome, StoreError>;
    /// Records what a leased delivery's attempt came to, and with a [`Pause`] (a 429) holds
    /// the whole destination for every consumer. False when the lease was lost.
    async fn record_attempt(
        &self,
        lease: &Lease,
        attempt: Attempt,
        pause: Option<Pause>,
    ) -> Result<bool, StoreError>;

    async fn dead_letters(&self, destination: Option<&str>) -> Result<Vec<DeadLetter>, StoreError>;
    /// The dead letters a selection names, with what they were rendered from.
    async fn dead_sources(
        &self,
        selection: &Selection,
    ) -> Result<Vec<(DeadLetter, DeadSource)>, StoreError>;
    /// Puts dead letters back in the queue (optionally with a new payload); returns how many.
    async fn requeue(
        &self,
        items: Vec<(i64, Option<String>)>,
        now: i64,
    ) -> Result<usize, StoreError>;
    async fn purge(&self, selection: &Selection) -> Result<usize, StoreError>;

    async fn queue_stats(&self) -> Result<Vec<QueueStat>, StoreError>;
    /// Dead-letters the waiting deliveries of these destinations (removed from the config),
    /// so nothing waits forever unseen; returns how many.
    async fn dead_letter_destinations(
        &self,
        destinations: Vec<String>,
        now: i64,
    ) -> Result<usize, StoreError>;
    /// Destinations that have waiting deliveries.
    async fn queued_destinations(&self) -> Result<Vec<String>, StoreError>;

    // --- Maintenance ---

    /// Deletes what is past its keep time and nothing references; one bounded chunk per call.
    async fn prune(&self, before: PruneBefore) -> Result<PruneStats, StoreError>;
    /// A write round trip, and for a file store a check that the path still names the file
    /// being written.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Finishes pending writes, releases what the store holds (connections, locks) and, for
    /// SQLite, checkpoints the WAL into the database file. Later calls fail with `Closed`.
    async fn close(&self);

    // --- Threads ---

    /// The thread of a key, if one is known.
    async fn thread(&self, key: &ThreadKey) -> Result<Option<Thread>, StoreError>;
    /// Creates or replaces a thread's row, only while `lease` (the delivery applying the
    /// event) is still held: false, and nothing written, when it was lost. This is what
    /// serialises a key's events across replicas (one live lease per destination).
    async fn save_thread(&self, lease: &Lease, thread: &Thread) -> Result<bool, StoreError>;
    /// Known threads, by destination then key.
    async fn threads(&self, destination: Option<&str>) -> Result<Vec<Thread>, StoreError>;
    /// Drops a thread (its next event posts a new root); false when it was not known.
    async fn forget_thread(&self, key: &ThreadKey) -> Result<bool, StoreError>;
    /// Drops threads last changed before `before`; returns how many.
    async fn prune_threads(&self, before: i64) -> Result<usize, StoreError>;
    // --- Silences ---

    /// Stores a silence; returns it with its id.
    async fn add_silence(&self, silence: NewSilence) -> Result<StoredSilence, StoreError>;
    /// Silences that have not ended at `now` (active or starting later), oldest first; with
    /// `ended_since`, also those that ended at or after that time.
    async fn silences(
        &self,
        now: i64,
        ended_since: Option<i64>,
    ) -> Result<Vec<StoredSilence>, StoreError>;
    /// Ends a silence now (its `ends_at` becomes `now`).
    async fn expire_silence(&self, id: i64, now: i64) -> Result<Expired, StoreError>;
    // --- Enrichment ---

    /// Files lookups of NHN's message query API; a requestId already pending, or cached and
    /// not expired at `now`, is skipped (single flight). Returns how many were filed.
    async fn request_lookups(
        &self,
        lookups: Vec<LookupRequest>,
        now: i64,
    ) -> Result<usize, StoreError>;
    /// Claims up to `limit` due lookups of one app key that nobody holds, oldest first.
    async fn claim_lookups(
        &self,
        who: &Claimant,
        app_key: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<PendingLookup>, StoreError>;
    /// Records a claimed lookup's outcome (the cache row for `Found`/`Missing`, the next try
    /// for `Retry`); false when the claim was lost (nothing written).
    async fn finish_lookup(
        &self,
        who: &Claimant,
        request_id: &str,
        result: LookupResult,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// The cached answers of these requestIds that have not expired at `now`.
    async fn cached_enrichments(
        &self,
        request_ids: Vec<String>,
        now: i64,
    ) -> Result<Vec<CachedEnrichment>, StoreError>;
    /// Extends `who`'s claims on waiting hooks to at least `until` (hooks held for a lookup);
    /// returns how many it still holds.
    async fn hold_hooks(
        &self,
        who: &Claimant,
        rows: Vec<i64>,
        until: i64,
    ) -> Result<usize, StoreError>;
    /// Deletes cache rows expired before `now` (one bounded chunk); returns how many.
    async fn prune_enrichments(&self, now: i64) -> Result<usize, StoreError>;
    async fn lookup_stats(&self, now: i64) -> Result<LookupStats, StoreError>;
}
