//! What goes into and comes out of a [`super::Store`]: plain data, no engine types.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Claimant;

use crate::bizmessage::{Envelope, HookKind};

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
    /// When set, the stored hooks are born claimed by this consumer (it routes them from
    /// memory; they are not handed to anyone else until the claim expires).
    pub claim: Option<Claimant>,
    /// When set, the hooks were routed before the write: each fresh hook is stored already
    /// routed, with its deliveries, digest memberships and counts, in the same transaction
    /// (a 200 then means stored *and* routed). Duplicates get none of it.
    pub routed: Option<RoutedPost>,
}

/// Routing decided for a POST's hooks before they have rows: every `row` and `hook_row` in
/// `batch` is the hook's position in [`NewPost::hooks`], made a row by [`DispatchBatch::placed`].
#[derive(Debug, Clone)]
pub struct RoutedPost {
    pub batch: DispatchBatch,
    pub rules: Rules,
}

#[derive(Debug, Clone)]
pub struct NewHook {
    /// `h:<hookId>`, or `c:<hash of the hook's JSON>` when it has no id.
    pub dedup_key: String,
    /// The hook's JSON exactly as received.
    pub raw: Arc<str>,
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
    /// Per hook of the POST (in order): its row when stored.
    pub rows: Vec<Option<i64>>,
}

/// Where a stored hook is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookState {
    /// Waiting to be routed (new, or put back by `reroute`).
    Waiting,
    /// Matched at least one route.
    Routed,
    /// Matched no route: kept for `reroute`, pruned after `store.keep_unrouted`.
    Unrouted,
    /// Routing it failed repeatedly: kept, not routed again until `reroute`.
    Quarantined,
}

impl HookState {
    pub fn as_str(self) -> &'static str {
        match self {
            HookState::Waiting => "waiting",
            HookState::Routed => "routed",
            HookState::Unrouted => "unrouted",
            HookState::Quarantined => "quarantined",
        }
    }

    pub fn parse(s: &str) -> Option<HookState> {
        Some(match s {
            "waiting" => HookState::Waiting,
            "routed" => HookState::Routed,
            "unrouted" => HookState::Unrouted,
            "quarantined" => HookState::Quarantined,
            _ => return None,
        })
    }
}

/// A stored hook on its way to routing.
#[derive(Debug, Clone)]
pub struct StoredHook {
    pub row: i64,
    pub received_at: i64,
    /// Shared by the hooks of one POST.
    pub envelope: Arc<Envelope>,
    /// The hook's JSON exactly as received (shared with the [`NewHook`] it was stored from).
    pub raw: Arc<str>,
    /// Destinations it was already given (directly or through a digest group): routing it
    /// again never gives it to them twice.
    pub sent_to: Vec<String>,
    /// Earlier failed attempts to route it.
    pub failures: i64,
    /// The hook already parsed (handed over in memory at ingest), to spare parsing it again.
    pub parsed: Option<crate::bizmessage::Hook>,
}

/// The envelope of the hook rows being read, parsed once: the hooks of one POST share its
/// text, and rows are read in order, so consecutive rows mostly hit.
#[derive(Default)]
pub struct EnvelopeCache(Option<(String, Arc<Envelope>)>);

impl EnvelopeCache {
    /// The envelope stored as `text` with hook row `row` (named if it cannot be read).
    pub fn get(&mut self, text: &str, row: i64) -> Result<Arc<Envelope>, super::StoreError> {
        if let Some((t, e)) = &self.0
            && t == text
        {
            return Ok(Arc::clone(e));
        }
        let e = serde_json::from_str::<Envelope>(text)
            .map(Arc::new)
            .map_err(|e| super::StoreError::Corrupt(format!("envelope of hook row {row}: {e}")))?;
        self.0 = Some((text.to_string(), Arc::clone(&e)));
        Ok(e)
    }
}

/// A stored hook with where it is, for listings.
#[derive(Debug, Clone)]
pub struct ListedHook {
    pub hook: StoredHook,
    pub state: HookState,
    /// Why routing failed, for quarantined hooks.
    pub reason: Option<String>,
}

/// What routing one claimed hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    pub row: i64,
    /// Whether any route matched.
    pub routed: bool,
    /// Every destination the hook has now been given (the stored `sent_to` plus this batch).
    pub sent_to: Vec<String>,
}

/// Work produced by routing a batch of claimed hooks.
#[derive(Debug, Clone, Default)]
pub struct DispatchBatch {
    pub hooks: Vec<HookOutcome>,
    pub deliveries: Vec<NewDelivery>,
    pub members: Vec<NewMember>,
    /// Hooks a silence held back from a grouped route: counted for the group's next digest
    /// ("+N silenced"), not members of it.
    pub silenced: Vec<SilencedMember>,
    /// Results counted for rate routes' alert series.
    pub rates: Vec<crate::store::NewRateCount>,
}

impl DispatchBatch {
    /// Adds another batch's work to this one.
    pub fn absorb(&mut self, other: DispatchBatch) {
        self.hooks.extend(other.hooks);
        self.deliveries.extend(other.deliveries);
        self.members.extend(other.members);
        self.silenced.extend(other.silenced);
        self.rates.extend(other.rates);
    }

    /// The batch of a [`RoutedPost`] with positions turned into the rows the hooks got
    /// (`rows`, per position; `None` for a duplicate, whose work is dropped, as is the work of
    /// a hook with no outcome in the batch: it is stored waiting, for the dispatcher).
    pub fn placed(self, rows: &[Option<i64>]) -> DispatchBatch {
        let decided: std::collections::HashSet<i64> = self.hooks.iter().map(|h| h.row).collect();
        let row = |position: i64| {
            if !decided.contains(&position) {
                return None;
            }
            usize::try_from(position)
                .ok()
                .and_then(|p| rows.get(p).copied().flatten())
        };
        DispatchBatch {
            hooks: self
                .hooks
                .into_iter()
                .filter_map(|h| {
                    Some(HookOutcome {
                        row: row(h.row)?,
                        ..h
                    })
                })
                .collect(),
            deliveries: self
                .deliveries
                .into_iter()
                .filter_map(|d| match d.hook_row {
                    Some(p) => Some(NewDelivery {
                        hook_row: Some(row(p)?),
                        ..d
                    }),
                    None => Some(d),
                })
                .collect(),
            members: self
                .members
                .into_iter()
                .filter_map(|m| {
                    Some(NewMember {
                        hook_row: row(m.hook_row)?,
                        ..m
                    })
                })
                .collect(),
            silenced: self
                .silenced
                .into_iter()
                .filter_map(|s| {
                    Some(SilencedMember {
                        hook_row: row(s.hook_row)?,
                        ..s
                    })
                })
                .collect(),
            rates: self
                .rates
                .into_iter()
                .filter_map(|n| {
                    Some(crate::store::NewRateCount {
                        hook_row: row(n.hook_row)?,
                        ..n
                    })
                })
                .collect(),
        }
    }
}

/// A silenced hook of a grouped route, counted beside the group's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilencedMember {
    pub route: String,
    pub group_key: String,
    pub hook_row: i64,
    /// For a group with `resolve_after`: its resolved message waits at least until then.
    pub resolve_until: Option<i64>,
}

/// What a dispatch commit did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DispatchCommit {
    pub committed: usize,
    /// Hooks whose claim was lost (another consumer took them over): nothing was written for
    /// them.
    pub lost: Vec<i64>,
}

/// Routing failed for these claimed hooks.
#[derive(Debug, Clone)]
pub struct RoutingFailure {
    pub rows: Vec<i64>,
    pub reason: String,
    pub now: i64,
    /// A hook is quarantined at this many failures.
    pub quarantine_after: i64,
    /// When to try the others again.
    pub retry_at: i64,
}

/// Which stored hooks `reroute` puts back in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reroute {
    /// Every hook received at or after this time (routed, unrouted or quarantined).
    Since(i64),
    /// Every hook that matched no route.
    Unrouted,
    /// Every quarantined hook.
    Quarantined,
    /// These hook rows.
    Rows(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboxStats {
    /// Hooks waiting to be routed.
    pub waiting: i64,
    pub oldest_waiting_at: Option<i64>,
    pub unrouted: i64,
    pub quarantined: i64,
}

/// A hook that could not be understood, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedHook {
    pub id: i64,
    pub received_at: i64,
    pub hooks_id: Option<String>,
    pub position: i64,
    pub reason: String,
    pub raw: String,
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
    /// When it was routed (a resolved message waits `resolve_after` from the later of the two,
    /// so a backlog routed after downtime does not look quiet).
    pub routed_at: i64,
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
    /// `resolve_after`: quiet this long after its last hook, the group sends a resolved message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_after_ms: Option<i64>,
}

/// Timing of a digest group (decided by `digest`'s rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTiming {
    pub started_at: i64,
    /// Members sent in earlier digests since the group started.
    pub total: i64,
    /// Members waiting for a digest.
    pub pending: i64,
    pub last_flush_at: Option<i64>,
    pub next_flush_at: Option<i64>,
    /// When its resolved message is due (the last hook's arrival plus `resolve_after`), for
    /// a group with `resolve_after`, until it is sent.
    pub resolve_at: Option<i64>,
}

/// Whether a group claimed for its resolved message is still quiet at `now` (checked again
/// in the flush's transaction: a hook may have joined since the claim).
pub fn resolve_still_due(t: &GroupTiming, now: i64) -> bool {
    t.pending == 0 && t.resolve_at.is_some_and(|at| at <= now)
}

/// What a digest counts. The store computes it with SQL over the members marked for a
/// digest; `digest::tally` computes the same from parsed hooks (dry runs, tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: usize,
    /// Members that are not message results (grouped template or unknown hooks).
    pub non_results: usize,
    pub first_at: Option<i64>,
    pub last_at: Option<i64>,
    /// `(value, count)`, by count descending, ties by value (missing first).
    pub codes: Vec<(Option<String>, usize)>,
    pub message_types: Vec<(Option<String>, usize)>,
    pub senders: Vec<(Option<String>, usize)>,
}

/// A group claimed for its digest: what the members marked for it count, and the first of
/// them as samples. Memory is bounded by `max_items`, whatever the group's size.
#[derive(Debug, Clone)]
pub struct DueGroup {
    pub route: String,
    pub group_key: String,
    pub settings: GroupSettings,
    pub timing: GroupTiming,
    /// Identifies this claim; the flush must carry it.
    pub token: i64,
    pub tally: Tally,
    pub samples: Vec<StoredHook>,
    /// Hooks of the group a silence held back since its last digest.
    pub silenced: i64,
}

/// One digest, ready to commit.
#[derive(Debug, Clone)]
pub struct Flush {
    pub route: String,
    pub group_key: String,
    /// The claim the digest was built under: it covers exactly the members marked by it...
    pub token: i64,
    /// ...which must be exactly this many, or the flush is refused.
    pub count: i64,
    /// The digest's template context, kept so a dead letter can be re-rendered.
    pub context: String,
    pub deliveries: Vec<NewDelivery>,
    pub now: i64,
    /// The silenced count the digest reports (the group's count is lowered by this much, so
    /// silenced hooks counted meanwhile go into the next digest).
    pub silenced: i64,
    /// The group's resolved message (no members), not a digest.
    pub resolved: bool,
}

/// A hook joining a group (what the join rule sees).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join {
    pub at: i64,
    pub routed_at: i64,
    pub wait_ms: i64,
    pub interval_ms: i64,
    pub resolve_after_ms: Option<i64>,
}

/// A digest going out (what the flush rule sees).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub members: i64,
    pub at: i64,
    pub interval_ms: i64,
    /// The group's resolved message, not a digest.
    pub resolved: bool,
}

/// The digest timing rules, applied by the store inside the transaction that reads and
/// writes a group (several replicas join hooks to the same group at once). The store knows
/// no rule of its own: `dispatch` passes `digest::RULES`.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub join: fn(Option<GroupTiming>, Join) -> GroupTiming,
    pub flushed: fn(GroupTiming, Flushed) -> GroupTiming,
}

/// A destination's shared pace row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaceState {
    /// Theoretical arrival time of the next send (GCRA), Unix ms.
    pub tat: i64,
    /// No send before this (a 429's `Retry-After`), Unix ms.
    pub blocked_until: i64,
}

/// How a destination is paced: its settings and the pure rule that admits a send. The store
/// applies `admit` to the shared row under its lock (`pace::admit`).
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// Messages per second; `None` is unlimited.
    pub rate: Option<f64>,
    pub burst: u32,
    /// `Ok(new state)` to send now, `Err(time)` to wait until then.
    pub admit: fn(&Pacer, PaceState, i64) -> Result<PaceState, i64>,
    /// The state after a 429 that pauses the destination until the given time.
    pub pause: fn(&Pacer, PaceState, i64) -> PaceState,
}

/// A 429: every consumer of the destination holds off until `until`.
#[derive(Debug, Clone, Copy)]
pub struct Pause {
    pub until: i64,
    pub pacer: Pacer,
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

/// A delivery leased to one consumer until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub delivery: Delivery,
    /// Identifies this lease; outcomes are recorded only under it.
    pub token: i64,
    pub until: i64,
}

/// What asking for a delivery to send came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    Leased(Lease),
    /// The pace (or a 429 pause) allows the next send at this time.
    Paced(i64),
    /// Another consumer holds a live lease on this destination until this time.
    Busy(i64),
    /// Nothing due; the next waiting delivery falls due then (None: nothing waits).
    Idle(Option<i64>),
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
    Hook { hook: Box<StoredHook> },
    Digest { context: String },
    Gone,
}

/// Which dead letters (or rejected hooks) a command acts on.
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
    /// Waiting deliveries, leased ones included.
    pub pending: i64,
    pub oldest_pending_at: Option<i64>,
    pub dead: i64,
}

/// Keep times for pruning: rows older than these (and not needed) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneBefore {
    /// Dedup keys and rejected hooks.
    pub seen: i64,
    /// Delivered deliveries, routed hooks, digests.
    pub delivered: i64,
    /// Unrouted and quarantined hooks.
    pub unrouted: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneStats {
    pub seen: usize,
    /// Dedup keys the SQLite store's sweep covered, counted in whole chunks (it prunes them in
    /// key order until its round is over); 0 on PostgreSQL.
    pub keys_looked_at: usize,
    pub hooks: usize,
    pub deliveries: usize,
    pub rejected: usize,
}

impl PruneStats {
    pub fn is_empty(&self) -> bool {
        self.seen + self.keys_looked_at + self.hooks + self.deliveries + self.rejected == 0
    }
}

/// What names a Slack thread: one per (destination, sender key, template code).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ThreadKey {
    pub destination: String,
    /// Empty when the hook carried none.
    pub sender_key: String,
    pub template_code: String,
}

impl ThreadKey {
    /// `destination/senderKey/templateCode`, as `threads list` prints it and `threads forget`
    /// reads it.
    pub fn display(&self) -> String {
        format!(
            "{}/{}/{}",
            self.destination, self.sender_key, self.template_code
        )
    }

    /// Reads [`ThreadKey::display`]'s form (the template code may itself contain `/`).
    pub fn parse(s: &str) -> Option<ThreadKey> {
        let mut parts = s.splitn(3, '/');
        let destination = parts.next().filter(|p| !p.is_empty())?;
        let sender_key = parts.next()?;
        let template_code = parts.next().filter(|p| !p.is_empty())?;
        Some(ThreadKey {
            destination: destination.to_string(),
            sender_key: sender_key.to_string(),
            template_code: template_code.to_string(),
        })
    }
}

/// A thread's state: where its root message is and what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thread {
    pub key: ThreadKey,
    /// The channel ID Slack answered with (with `root_ts` it names the root message).
    pub channel: String,
    pub root_ts: String,
    /// The last status applied to the root, and the event time it carried (`updateDate`
    /// text, which sorts as time): an older event never overwrites it.
    pub status: String,
    pub status_at: String,
    /// Ids of the reviewer comments already posted, so none is repeated.
    pub shown: Vec<String>,
    /// The delivery whose reply was posted last: a retry of that delivery posts no second
    /// reply.
    pub applied: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

// --- Silences ---

/// One `key=glob` condition of a silence, as the operator wrote it (compiled by
/// `crate::silence`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatcher {
    pub key: String,
    pub pattern: String,
}

/// A silence to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSilence {
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub author: Option<String>,
    pub created_at: i64,
}

/// A stored silence. Ids are never reused (operators expire silences by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredSilence {
    pub id: i64,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: i64,
    /// Moved to the time of expiry when expired early.
    pub ends_at: i64,
    pub comment: String,
    pub author: Option<String>,
    pub created_at: i64,
}

/// What expiring a silence came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Now,
    /// It had already ended (or been expired) at this time.
    Already(i64),
    Unknown,
}
