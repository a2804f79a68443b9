//! Durable state: the inbox of received hooks (with dedup), digest groups, the outbox of
//! deliveries, and dead letters. The [`Store`] trait is the seam: routing and rendering never
//! see SQL, so another engine (PostgreSQL, for several replicas) can be added beside
//! [`sqlite::SqliteStore`].
//!
//! Invariants every implementation keeps:
//! - `ingest` returns only after the accepted hooks are durable; a hook key seen within the
//!   dedup window is counted as a duplicate and not stored again.
//! - Hooks are handed to the dispatcher in arrival order, each exactly once: the dispatch of a
//!   batch (its deliveries, its group memberships and the cursor move) is one transaction.
//! - A digest flush (digest row, deliveries, removal of exactly the flushed members, group
//!   counters) is one transaction, so every grouped hook is in exactly one digest.
//! - Rows carry a format version ([`FORMAT_VERSION`]).

pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::bizmessage::{Envelope, HookKind};
use crate::digest::Tally;

/// Version written into every hook, delivery and digest row.
pub const FORMAT_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the store folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("the store was written by a newer bizrelay (schema {found}, this build knows {known})")]
    NewerSchema { found: i64, known: i64 },
    #[error("the store is shut down")]
    Closed,
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// One received POST, parsed, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub received_at: i64,
    /// The envelope's `hooksId` (for rejected rows).
    pub hooks_id: Option<String>,
    /// The envelope as JSON, stored with each hook.
    pub envelope_json: String,
    pub hooks: Vec<NewHook>,
    pub rejected: Vec<NewRejected>,
}

#[derive(Debug, Clone)]
pub struct NewHook {
    /// `h:<hookId>`, or `c:<hash of the hook's JSON>` when it has no id.
    pub dedup_key: String,
    /// The hook's JSON exactly as received.
    pub raw: String,
}

/// A hook that could not be understood, kept for inspection.
#[derive(Debug, Clone)]
pub struct NewRejected {
    pub position: usize,
    pub reason: String,
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// Per hook of the POST (in order): true when stored, false when a duplicate.
    pub fresh: Vec<bool>,
}

/// A stored hook on its way to routing.
#[derive(Debug, Clone)]
pub struct StoredHook {
    pub row: i64,
    pub received_at: i64,
    pub envelope: Envelope,
    pub raw: String,
}

/// Work produced by routing one batch of hooks.
#[derive(Debug, Clone, Default)]
pub struct DispatchBatch {
    /// The last hook row this batch covers; the cursor moves here.
    pub upto: i64,
    pub deliveries: Vec<NewDelivery>,
    pub members: Vec<NewMember>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub destination: String,
    pub route: String,
    pub template: String,
    /// The hook row for single-hook deliveries (digests have none).
    pub hook_row: Option<i64>,
    pub hook_id: Option<String>,
    pub payload: String,
    pub created_at: i64,
    /// When the (first) hook behind it arrived, for the latency metric.
    pub received_at: i64,
    /// Set when the delivery cannot be attempted at all (its destination is gone): it is
    /// stored straight into the dead-letter list with this reason.
    pub dead: Option<String>,
}

/// A hook joining a digest group, with what the digest will count of it.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub route: String,
    pub group_key: String,
    pub hook_row: i64,
    /// When the hook arrived (groups time from it).
    pub joined_at: i64,
    pub kind: HookKind,
    pub result_code: Option<String>,
    pub message_type: Option<String>,
    pub sender_key: Option<String>,
    pub settings: GroupSettings,
}

/// A grouped route's settings, stored with the group so a digest can still be sent after the
/// route is edited away by a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSettings {
    pub to: Vec<String>,
    pub template: String,
    pub wait_ms: i64,
    pub interval_ms: i64,
    pub max_items: usize,
}

/// A group whose digest is due: what it counts and its first members as samples. Memory is
/// bounded by `max_items`, whatever the group's size.
#[derive(Debug, Clone)]
pub struct DueGroup {
    pub route: String,
    pub group_key: String,
    pub settings: GroupSettings,
    pub started_at: i64,
    /// Hooks already sent in earlier digests of this group.
    pub total_before: i64,
    /// The digest covers exactly the members with `hook_row <= upto`.
    pub upto: i64,
    pub tally: Tally,
    pub samples: Vec<StoredHook>,
}

/// One digest, ready to commit.
#[derive(Debug, Clone)]
pub struct Flush {
    pub route: String,
    pub group_key: String,
    /// The digest covers the members with `hook_row <= upto`...
    pub upto: i64,
    /// ...which must be exactly this many, or the flush is refused.
    pub count: i64,
    /// The digest's template context, kept so a dead letter can be re-rendered.
    pub context: String,
    pub deliveries: Vec<NewDelivery>,
    pub now: i64,
}

/// Timing of a digest group (see `digest::on_join`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTiming {
    pub started_at: i64,
    pub total: i64,
    pub pending: i64,
    pub last_flush_at: Option<i64>,
    pub next_flush_at: Option<i64>,
}

/// A delivery waiting to be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub destination: String,
    pub route: String,
    pub hook_id: Option<String>,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
    pub received_at: i64,
}

/// What one attempt to post came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
        at: i64,
    },
    Retry {
        status: Option<u16>,
        error: String,
        at: i64,
        next_at: i64,
    },
    Dead {
        status: Option<u16>,
        reason: String,
        at: i64,
    },
}

/// A delivery that will not be retried by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub destination: String,
    pub route: String,
    pub template: String,
    pub hook_id: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub first_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub reason: String,
}

/// What a dead letter was rendered from, for `replay --rerender`.
#[derive(Debug, Clone)]
pub enum DeadSource {
    Hook { hook: StoredHook },
    Digest { context: String },
    Gone,
}

/// Which dead letters a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Ids(Vec<i64>),
    Destination(String),
    OlderThan(i64),
    All,
}

/// Per-destination queue figures for metrics and readiness.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueStat {
    pub destination: String,
    pub pending: i64,
    pub oldest_pending_at: Option<i64>,
    pub dead: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneStats {
    pub seen: usize,
    pub hooks: usize,
    pub deliveries: usize,
    pub rejected: usize,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a POST's hooks durably; returns after the commit.
    async fn ingest(&self, post: NewPost) -> Result<IngestOutcome, StoreError>;

    /// Hooks not yet dispatched, oldest first.
    async fn undispatched(&self, limit: usize) -> Result<Vec<StoredHook>, StoreError>;
    /// Records the routing of a batch atomically and moves the dispatch cursor.
    async fn commit_dispatch(&self, batch: DispatchBatch) -> Result<(), StoreError>;

    /// Groups whose digest is due at `now`, with their members.
    async fn due_groups(&self, now: i64, limit: usize) -> Result<Vec<DueGroup>, StoreError>;
    /// When the next digest falls due, if any group has members.
    async fn next_flush_at(&self) -> Result<Option<i64>, StoreError>;
    async fn commit_flush(&self, flush: Flush) -> Result<(), StoreError>;
    /// Open groups of a route (for `bizrelay route`, metrics).
    async fn group_timing(
        &self,
        route: &str,
        group_key: &str,
    ) -> Result<Option<GroupTiming>, StoreError>;

    /// Pending deliveries of a destination due at `now`, in arrival order.
    async fn due_deliveries(
        &self,
        destination: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// When the destination's next pending delivery falls due.
    async fn next_due_at(&self, destination: &str) -> Result<Option<i64>, StoreError>;
    async fn record_attempt(&self, id: i64, attempt: Attempt) -> Result<(), StoreError>;

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
    /// Dead-letters the pending deliveries of destinations not in `known` (removed from the
    /// config), so nothing waits forever unseen; returns how many.
    async fn dead_letter_orphans(&self, known: Vec<String>, now: i64) -> Result<usize, StoreError>;
    /// Deletes dedup keys older than `seen_before` and delivered rows older than
    /// `delivered_before`, and what nothing references any more.
    async fn prune(
        &self,
        seen_before: i64,
        delivered_before: i64,
    ) -> Result<PruneStats, StoreError>;
    /// A write round trip: proves the store is writable.
    async fn ping(&self) -> Result<(), StoreError>;
}
