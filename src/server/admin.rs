//! Operator endpoints: readiness, metrics and reload.

use std::sync::Arc;

use serde_json::json;
use subtle::ConstantTimeEq;
use warp::Reply;
use warp::http::StatusCode;

use super::{ApiError, json_reply};
use crate::reload::Reloader;
use crate::state::{State, now_ms};

/// 200 when the store is writable and a config is loaded; 503 with the reason otherwise.
/// Destinations that answered 401/403/404/410 are listed (by name) but do not make the
/// service unready: the hooks are still safe in the store.
pub async fn readyz(state: Arc<State>) -> warp::reply::Response {
    let loaded = state.current();
    let unhealthy = state.health.unhealthy();
    match state.store.ping().await {
        Ok(()) => {
            state.metrics.store_writable.set(1.0);
            json_reply(
                StatusCode::OK,
                &json!({"ready": true, "config_hash": loaded.hash, "unhealthy_destinations": unhealthy}),
            )
        }
        Err(e) => {
            state.metrics.store_writable.set(0.0);
            json_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "reason": format!("store is not writable: {e}"), "unhealthy_destinations": unhealthy}),
            )
        }
    }
}

pub async fn metrics(state: Arc<State>) -> warp::reply::Response {
    let destinations = state.destination_names();
    match state.store.queue_stats().await {
        Ok(stats) => state
            .metrics
            .set_queue_stats(&destinations, &stats, now_ms()),
        Err(e) => tracing::warn!(error = %e, "cannot read queue figures for /metrics"),
    }
    warp::reply::with_header(
        state.metrics.render(),
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response()
}

pub async fn reload(
    state: &State,
    auth: Option<String>,
    reloader: &Reloader,
) -> Result<warp::reply::Response, ApiError> {
    let Some(token) = state.current().config.admin.token.clone() else {
        return Err(ApiError::ReloadDisabled);
    };
    let given = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return Err(ApiError::AdminToken);
    }
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
