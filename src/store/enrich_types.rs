//! The store's types for enrichment (issue #16): pending lookups of NHN's message query API
//! (durable work, claimed like hooks) and the cache of answers per requestId.

use crate::bizmessage::Enrichment;
use crate::store::StoreError;

/// A message to look up. One lookup per requestId: a second request for a requestId already
/// pending or cached is ignored (single flight), since the template code is the same for
/// every recipient of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRequest {
    pub request_id: String,
    pub app_key: String,
    pub message_type: Option<String>,
    pub recipient_seq: i64,
    /// The hook's `_links.self.href` (followed only if its origin is `enrich.base_url`'s).
    pub href: Option<String>,
}

/// A lookup claimed by a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLookup {
    pub request: LookupRequest,
    /// Earlier failed attempts.
    pub attempts: i64,
    pub created_at: i64,
}

/// What a lookup came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupResult {
    /// Cached until `expires_at`.
    Found { fields: Enrichment, expires_at: i64 },
    /// NHN has nothing to say (no data, bad credentials, given up): remembered until
    /// `expires_at`, so hooks waiting for it are routed at once and no lookup is repeated.
    Missing { reason: String, expires_at: i64 },
    /// Try again at `at`.
    Retry { at: i64, reason: String },
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEnrichment {
    pub request_id: String,
    /// The recipient that was looked up: its own fields serve only hooks about it.
    pub recipient_seq: Option<i64>,
    /// None when NHN had nothing (see [`LookupResult::Missing`]).
    pub fields: Option<Enrichment>,
    pub stored_at: i64,
    pub expires_at: i64,
}

impl CachedEnrichment {
    /// The fields for a hook about `recipient_seq`: all of them for the recipient looked up,
    /// the request-level ones (template code, sender key, channel) for the others.
    pub fn for_recipient(&self, recipient_seq: Option<i64>) -> Option<Enrichment> {
        let fields = self.fields.as_ref()?;
        if recipient_seq.is_some() && recipient_seq == self.recipient_seq {
            Some(fields.clone())
        } else {
            Some(fields.request_level())
        }
    }
}

/// Counts for `/readyz`, metrics and `bizrelay route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupStats {
    pub pending: i64,
    pub cached: i64,
}

/// Reads a cache row's `fields` (NULL: NHN had nothing).
pub(crate) fn parse_enrichment(text: Option<&str>) -> Result<Option<Enrichment>, StoreError> {
    text.map(serde_json::from_str)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("an enrichment cache row: {e}")))
}
