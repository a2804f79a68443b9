//! The webhook endpoint: verify, read, parse, store, answer. It never waits for Slack or
//! Teams: relaying happens after the 200, from the store.
//!
//! Invariant: 200 is answered only after every accepted hook of the POST is committed; if the
//! store cannot take them, the answer is 503 so NHN can try again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use warp::Reply;
use warp::http::HeaderMap;

use super::ApiError;
use crate::bizmessage::{parse_hook, parse_post};
use crate::dispatch::{self, PostRouting};
use crate::state::{State, StoreUse};
use crate::store::{NewHook, NewPost, NewRejected, StoredHook};
use crate::verify::{self, SIGNATURE_HEADER};

/// Rejected hooks logged one by one per POST; the rest are counted in one line.
const LOGGED_REJECTIONS: usize = 5;

/// Whether a Content-Type (if any) may carry JSON. NHN sends `application/json;charset=UTF-8`.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(warp::http::header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    let json_suffix = mime
        .len()
        .checked_sub(5)
        .and_then(|at| mime.get(at..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case("+json"));
    mime.eq_ignore_ascii_case("application/json") || json_suffix || mime.is_empty()
}

/// Reads the body up to `max` bytes within `timeout`.
async fn read_body<S, B>(mut body: S, max: usize, timeout: Duration) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let read = async {
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(|_| ApiError::BodyRead)?;
            if out.len() + chunk.remaining() > max {
                return Err(ApiError::TooLarge { max });
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                out.extend_from_slice(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        Ok(out)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

/// The dedup key of a hook: its `hookId`, or a hash of its exact JSON when it has none.
pub fn dedup_key(hook_id: Option<&str>, raw: &str) -> String {
    match hook_id {
        Some(id) => format!("h:{id}"),
        None => format!("c:{}", hex::encode(Sha256::digest(raw.as_bytes()))),
    }
}

/// Gives the freshly stored hooks to the dispatcher (room for all of them was reserved);
/// `hooks` carry their positions in the POST as rows until now.
fn hand_over(state: &State, hooks: Vec<StoredHook>, outcome: &crate::store::IngestOutcome) {
    let total = hooks.len();
    let fresh: Vec<StoredHook> = hooks
        .into_iter()
        .zip(&outcome.rows)
        .filter_map(|(hook, row)| row.map(|row| StoredHook { row, ..hook }))
        .collect();
    state.handoff.release(total - fresh.len());
    state.handoff.push(fresh);
}

pub async fn receive<S, B>(
    state: Arc<State>,
    headers: HeaderMap,
    body: S,
) -> Result<warp::reply::Response, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let started = Instant::now();
    let loaded = state.current();
    let cfg = &loaded.config;
    if !json_content_type(&headers) {
        return Err(ApiError::ContentType);
    }
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    verify::verify_signature(signature, &cfg.ingest.signatures).map_err(ApiError::Verify)?;
    let max = cfg.server.max_body_bytes;
    let declared = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::TooLarge { max });
    }
    let bytes = read_body(body, max, cfg.server.body_read_timeout).await?;
    let post = parse_post(&bytes).map_err(ApiError::Parse)?;
    verify::verify_app_key(post.envelope.app_key.as_deref(), &cfg.ingest.app_keys)
        .map_err(ApiError::Verify)?;

    let received_at = state.now();
    let mut hooks = Vec::with_capacity(post.hooks.len());
    let mut parsed = Vec::with_capacity(post.hooks.len());
    let mut kinds = Vec::with_capacity(post.hooks.len());
    // Per accepted hook, the metric labels of its fields of unexpected types.
    let mut mismatched: Vec<Vec<&'static str>> = Vec::with_capacity(post.hooks.len());
    let mut rejected = Vec::new();
    for (position, raw) in post.hooks.iter().enumerate() {
        let raw = raw.get();
        match parse_hook(raw) {
            Ok(hook) => {
                kinds.push(hook.kind());
                mismatched.push(hook.mismatches.iter().map(|m| m.label).collect());
                hooks.push(NewHook {
                    dedup_key: dedup_key(hook.hook_id.as_deref(), raw),
                    raw: raw.into(),
                });
                parsed.push(hook);
            }
            // A hook of unknown shape may hold recipient numbers anywhere: they are masked
            // before they are stored, unless the operator turned masking off.
            Err(e) => rejected.push(NewRejected {
                position,
                reason: e.to_string(),
                raw: if cfg.privacy.mask_recipient {
                    crate::mask::mask_phone_like(raw)
                } else {
                    raw.to_string()
                },
            }),
        }
    }
    let hooks_id = post.envelope.hooks_id.clone().unwrap_or_else(|| "-".into());
    for r in rejected.iter().take(LOGGED_REJECTIONS) {
        tracing::warn!(hooks_id = ?hooks_id, position = r.position, reason = %r.reason, "hook rejected (kept in the store's `rejected` table)");
    }
    if rejected.len() > LOGGED_REJECTIONS {
        tracing::warn!(hooks_id = ?hooks_id, more = rejected.len() - LOGGED_REJECTIONS, "more hooks rejected in this POST");
    }

    let total = hooks.len();
    if let Some(why) = state.store_health.refuses_hooks() {
        tracing::error!(hooks_id = ?hooks_id, hooks = total, reason = %why, "the store is failing; answering 503 so NHN retries");
        return Err(ApiError::Store);
    }
    // The hooks as routing sees them, their positions in the POST standing in for rows; they
    // share the POST's envelope and each its JSON with the row written.
    let envelope = Arc::new(post.envelope.clone());
    let stored_hooks: Arc<Vec<StoredHook>> = Arc::new(
        hooks
            .iter()
            .zip(parsed)
            .enumerate()
            .map(|(position, (h, parsed))| StoredHook {
                row: position as i64,
                received_at,
                envelope: Arc::clone(&envelope),
                raw: Arc::clone(&h.raw),
                sent_to: Vec::new(),
                failures: 0,
                parsed: Some(parsed),
            })
            .collect(),
    );
    // Routed now when the config allows (stored already routed, in the same transaction);
    // else handed to this replica's dispatcher in memory when there is room (stored claimed
    // by it, routed without being read back and parsed again); else left to the store.
    let routing = if total > 0 && dispatch::routes_at_ingest(&loaded) {
        dispatch::route_post(&state, &loaded, &stored_hooks, received_at).await
    } else {
        None
    };
    let handed = routing.is_none() && total > 0 && state.handoff.reserve(total);
    let (routed, reports) = match routing {
        Some(PostRouting { post, reports }) => (Some(post), Some(reports)),
        None => (None, None),
    };
    // The dispatcher is woken for what it must do next: route the hooks it was handed or
    // left in the store, or time the digests of the groups these hooks join.
    let wake = routed.as_ref().is_none_or(|r| !r.batch.members.is_empty());
    let new_post = NewPost {
        received_at,
        hooks_id: post.envelope.hooks_id.clone(),
        envelope_json: serde_json::to_string(&post.envelope).unwrap_or_else(|_| "{}".into()),
        hooks,
        rejected,
        claim: handed.then(|| crate::store::Claimant {
            owner: state.claimant.owner.clone(),
            ttl_ms: crate::state::HANDOFF_CLAIM_MS.min(state.claimant.ttl_ms),
        }),
        routed,
    };
    let stored = state.store.ingest(new_post).await;
    state.store_health.record(StoreUse::Ingest, &stored);
    let outcome = match stored {
        Ok(o) => {
            state.metrics.store_writable.set(1.0);
            if handed {
                let hooks = Arc::try_unwrap(stored_hooks).unwrap_or_else(|h| (*h).clone());
                hand_over(&state, hooks, &o);
            }
            if let Some(reports) = reports {
                dispatch::account_post(&state, reports, &o);
            }
            o
        }
        Err(e) => {
            if handed {
                // A commit that timed out may still land later, claimed by this replica for
                // HANDOFF_CLAIM_MS: the dispatcher claims it from the store after that.
                state.handoff.release(total);
            }
            state.metrics.store_writable.set(0.0);
            tracing::error!(hooks_id = ?hooks_id, hooks = total, error = %e, "cannot store hooks; answering 503 so NHN retries");
            return Err(ApiError::Store);
        }
    };
    let m = &state.metrics.hooks_received;
    // One label lookup per (kind, outcome) of the POST, not one per hook.
    let mut tally: Vec<(&'static str, &'static str, u64)> = Vec::new();
    for (kind, fresh) in kinds.iter().zip(&outcome.fresh) {
        let labels = (kind.as_str(), if *fresh { "accepted" } else { "duplicate" });
        match tally.iter_mut().find(|t| (t.0, t.1) == labels) {
            Some(t) => t.2 += 1,
            None => tally.push((labels.0, labels.1, 1)),
        }
    }
    for (kind, outcome, n) in tally {
        m.with_label_values(&[kind, outcome]).inc_by(n);
    }
    let mut odd_fields: Vec<&str> = Vec::new();
    for (labels, _) in mismatched.iter().zip(&outcome.fresh).filter(|(_, f)| **f) {
        for label in labels {
            state
                .metrics
                .hook_type_mismatches
                .with_label_values(&[label])
                .inc();
            if !odd_fields.contains(label) {
                odd_fields.push(label);
            }
        }
    }
    if !odd_fields.is_empty() {
        tracing::info!(hooks_id = ?hooks_id, fields = %odd_fields.join(","),
            "hooks with fields of unexpected types accepted; the values are relayed as text");
    }
    if outcome.rejected > 0 {
        m.with_label_values(&["invalid", "rejected"])
            .inc_by(outcome.rejected as u64);
    }
    if outcome.accepted > 0 && wake {
        state.dispatch_wake.notify_one();
    }
    tracing::info!(
        hooks_id = ?hooks_id,
        event = post.envelope.event.as_deref().unwrap_or("-"),
        accepted = outcome.accepted,
        duplicates = outcome.duplicates,
        rejected = outcome.rejected,
        bytes = bytes.len(),
        ms = started.elapsed().as_millis() as u64,
        "webhook received"
    );
    // Three numbers: formatted directly, the hot path need not build a JSON tree.
    let body = format!(
        r#"{{"accepted":{},"duplicates":{},"rejected":{}}}"#,
        outcome.accepted, outcome.duplicates, outcome.rejected
    );
    Ok(warp::reply::with_header(body, "content-type", "application/json").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys() {
        assert_eq!(dedup_key(Some("h-1"), "{}"), "h:h-1");
        let a = dedup_key(None, r#"{"a":1}"#);
        assert!(a.starts_with("c:") && a.len() == 66);
        assert_eq!(a, dedup_key(None, r#"{"a":1}"#));
        assert_ne!(a, dedup_key(None, r#"{"a":2}"#));
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(json_content_type(&h), "absent is accepted");
        for (v, ok) in [
            ("application/json;charset=UTF-8", true),
            ("Application/JSON", true),
            ("application/vnd.api+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            h.insert(warp::http::header::CONTENT_TYPE, v.parse().unwrap());
            assert_eq!(json_content_type(&h), ok, "{v}");
        }
    }
}
