//! Enrichment (issue #16): failed message-result hooks are looked up in NHN's message query
//! API, so routes can match and digests group by the template code, and alerts show the SMS
//! fallback's outcome.
//!
//! The parts, one concern each: [`endpoint`] (which URL: from `kakaoMessageType`, never a
//! foreign `_links.self.href`), [`answer`] (reading NHN's answers, pure), [`client`] (the GET
//! with `X-Secret-Key`), [`worker`] (the task making the store's pending lookups, with
//! retries and `max_in_flight` per app key) and [`hold`] (the dispatcher's side: attach what
//! the cache knows, hold a hook until its lookup is done or `wait` has passed).
//!
//! Invariants:
//! - Lookups never run in the webhook request path; they are durable work in the store, one
//!   per requestId (single flight), and their answers are cached in the store per requestId,
//!   shared by replicas, so a storm of one mass send costs one lookup.
//! - A hook is never held beyond `enrich.wait` after it was received, and never dropped: past
//!   the wait, or when the lookup fails, it is routed without the enriched fields (missing in
//!   the context, never guessed).
//! - The secret key is sent only to `enrich.base_url`'s origin and never logged.

pub mod answer;
pub mod client;
pub mod endpoint;
pub mod hold;
pub mod worker;

use crate::bizmessage::{Envelope, Hook, HookBody, Outcome};
use crate::config::enrich::{EnrichConfig, EnrichOnly};
use crate::store::LookupRequest;

/// How long an empty or refused answer is remembered (hooks of that request are routed at
/// once meanwhile, and no lookup is repeated).
pub const MISSING_KEEP_MS: i64 = 60_000;

/// The lookup a hook needs, if any: a message result (a failure unless `only = "all"`) of an
/// app key with a secret key, with a requestId and recipientSeq.
pub fn lookup_for(cfg: &EnrichConfig, envelope: &Envelope, hook: &Hook) -> Option<LookupRequest> {
    let HookBody::MessageResult(r) = &hook.body else {
        return None;
    };
    if cfg.only == EnrichOnly::Failures && r.outcome() == Outcome::Success {
        return None;
    }
    let app_key = envelope.app_key.as_deref()?;
    cfg.secret_of(app_key)?;
    Some(LookupRequest {
        request_id: r
            .request_id
            .as_deref()
            .filter(|s| !s.is_empty())?
            .to_string(),
        app_key: app_key.to_string(),
        message_type: r.kakao_message_type.as_deref().map(String::from),
        recipient_seq: r.recipient_seq?,
        href: r.links_self.clone(),
    })
}

/// `wait` in milliseconds.
pub fn wait_ms(cfg: &EnrichConfig) -> i64 {
    i64::try_from(cfg.wait.as_millis()).unwrap_or(i64::MAX)
}
