//! Operator endpoints: readiness (store, dispatcher, senders, routing lag), metrics, reload,
//! and the admin token check they share with the silence API.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use warp::Reply;
use warp::http::StatusCode;

use super::{ApiError, json_reply};
use crate::reload::Reloader;
use crate::state::{State, StoreUse, TaskLife};
use crate::store::StoreError;
use crate::{deliver, dispatch};

/// How long `/readyz` waits for the store's answer.
const READY_PING: Duration = Duration::from_secs(2);
/// Routing counts as stuck when hooks wait and the dispatcher made no progress for this long.
const STUCK_AFTER_MS: i64 = 30_000;

/// Why routing counts as stuck, if it does: hooks wait and the dispatcher has been idle too long.
fn stuck_reason(waiting: i64, idle_for_ms: i64) -> Option<String> {
    (waiting > 0 && idle_for_ms > STUCK_AFTER_MS).then(|| {
        format!(
            "{} waiting and the dispatcher made no progress for over {}s",
            crate::text::count(waiting.max(0) as u64, "hook", "hooks"),
            STUCK_AFTER_MS / 1000
        )
    })
}

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

fn task_json(t: &TaskLife) -> Value {
    json!({
        "running": t.running,
        "restarts": t.restarts,
        "last_progress": t.last_progress.map_or(Value::Null, rfc3339),
        "last_progress_ms": t.last_progress,
        "last_failure": t.last_failure,
    })
}

/// 200 when the store answers and works for every use, the dispatcher runs and makes
/// progress, and a config is loaded; 503 with the reasons otherwise. Destinations that
/// answered 401/403/404/410 are listed (by name) but do not make the service unready: the
/// hooks are still safe in the store.
pub async fn readyz(state: Arc<State>) -> warp::reply::Response {
    let loaded = state.current();
    let now = state.now();
    let mut reasons: Vec<String> = Vec::new();
    let ping = match tokio::time::timeout(READY_PING, state.store.ping()).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Timeout(
            humantime::format_duration(READY_PING).to_string(),
        )),
    };
    state.store_health.record(StoreUse::Probe, &ping);
    if let Err(e) = &ping {
        reasons.push(format!("the store does not answer: {e}"));
    }
    state
        .metrics
        .store_writable
        .set(if ping.is_ok() { 1.0 } else { 0.0 });
    let failing: Vec<Value> = state
        .store_health
        .failing()
        .into_iter()
        .map(|(used, error)| {
            if used != StoreUse::Probe {
                reasons.push(format!(
                    "the store keeps failing for {}: {error}",
                    used.as_str()
                ));
            }
            json!({"use": used.as_str(), "error": error})
        })
        .collect();
    let tasks = state.liveness.snapshot();
    let dispatcher = tasks.get(dispatch::TASK).cloned().unwrap_or_default();
    if !dispatcher.running {
        reasons.push("the dispatcher is not running".into());
    }
    let inbox = state.store.inbox_stats().await.ok();
    if let Some(stats) = &inbox {
        state.metrics.set_inbox_stats(stats, now);
        let idle_for = dispatcher.last_progress.map_or(i64::MAX, |t| now - t);
        reasons.extend(stuck_reason(stats.waiting, idle_for));
    }
    let senders: serde_json::Map<String, Value> = loaded
        .config
        .destinations
        .keys()
        .map(|d| {
            let t = tasks
                .get(&deliver::task_name(d))
                .cloned()
                .unwrap_or_default();
            (d.clone(), task_json(&t))
        })
        .collect();
    let routing = inbox.as_ref().map_or(Value::Null, |s| {
        json!({
            "waiting": s.waiting,
            "oldest_waiting_at": s.oldest_waiting_at.map_or(Value::Null, rfc3339),
            "oldest_waiting_at_ms": s.oldest_waiting_at,
            "lag_seconds": s.oldest_waiting_at.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
            "unrouted_kept": s.unrouted,
            "quarantined": s.quarantined,
        })
    });
    let unhealthy: serde_json::Map<String, Value> = state
        .health
        .unhealthy()
        .into_iter()
        .map(|(name, h)| {
            (
                name,
                json!({"healthy": false, "last_status": h.last_status, "since": rfc3339(h.since), "since_ms": h.since}),
            )
        })
        .collect();
    // Refused credentials are a detail, not unreadiness: alerts still go out, unenriched.
    let enrichment = if loaded.config.enrich.enabled {
        let lookups = state.store.lookup_stats(now).await.ok();
        let refused: Vec<Value> = state
            .enrich_health
            .refused_keys()
            .into_iter()
            .map(|(app_key, reason)| json!({"app_key": app_key, "reason": reason}))
            .collect();
        json!({
            "enabled": true,
            "refused_app_keys": refused,
            "pending_lookups": lookups.map(|l| l.pending),
            "cached_requests": lookups.map(|l| l.cached),
        })
    } else {
        json!({"enabled": false})
    };
    let ready = reasons.is_empty();
    let body = json!({
        "enrichment": enrichment,
        "ready": ready,
        "reasons": reasons,
        "config_hash": loaded.hash,
        "replica": state.claimant.owner,
        "store": {"name": state.store.describe(), "answers": ping.is_ok(), "failing": failing},
        "dispatcher": task_json(&dispatcher),
        "senders": senders,
        "routing": routing,
        "unhealthy_destinations": unhealthy,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_reply(status, &body)
}

pub async fn metrics(state: Arc<State>) -> warp::reply::Response {
    let destinations = state.destination_names();
    let now = state.now();
    match state.store.queue_stats().await {
        Ok(stats) => state.metrics.set_queue_stats(&destinations, &stats, now),
        Err(e) => tracing::warn!(error = %e, "cannot read queue figures for /metrics"),
    }
    match state.store.inbox_stats().await {
        Ok(stats) => state.metrics.set_inbox_stats(&stats, now),
        Err(e) => tracing::warn!(error = %e, "cannot read inbox figures for /metrics"),
    }
    warp::reply::with_header(
        state.metrics.render(),
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response()
}

/// Checks the admin bearer token (constant time); `disabled` when no token is configured.
pub fn check_token(state: &State, auth: Option<&str>, disabled: ApiError) -> Result<(), ApiError> {
    let Some(token) = state.current().config.admin.token.clone() else {
        return Err(disabled);
    };
    let given = auth
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return Err(ApiError::AdminToken);
    }
    Ok(())
}

pub async fn reload(
    state: &State,
    auth: Option<String>,
    reloader: &Reloader,
) -> Result<warp::reply::Response, ApiError> {
    check_token(state, auth.as_deref(), ApiError::ReloadDisabled)?;
    Ok(match reloader.reload("http").await {
        Ok(hash) => json_reply(
            StatusCode::OK,
            &json!({"reloaded": true, "config_hash": hash}),
        ),
        Err(errors) => json_reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"error": "config not reloaded", "detail": errors}),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::stuck_reason;

    #[test]
    fn the_stuck_reason_counts_its_hooks() {
        assert_eq!(stuck_reason(5, 1_000), None);
        assert_eq!(stuck_reason(0, i64::MAX), None);
        assert_eq!(
            stuck_reason(1, 31_000).as_deref(),
            Some("1 hook waiting and the dispatcher made no progress for over 30s")
        );
        assert_eq!(
            stuck_reason(2, i64::MAX).as_deref(),
            Some("2 hooks waiting and the dispatcher made no progress for over 30s")
        );
    }
}
