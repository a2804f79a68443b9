//! `GET/POST /api/silences` and `DELETE /api/silences/{id}` on the operator listener, behind
//! the admin token: the same silences and checks as `bizrelay silence` (see
//! [`crate::silence`]). A change made here is applied by this replica at once and by the
//! others within [`crate::silence::REFRESH`]. Only this authenticated API names the
//! operator's own matchers back in its errors (so a typo is easy to find); no error echoes
//! anything else of the request.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::admin::check_token;
use super::{ApiError, json_reply, respond, with_state};
use crate::silence;
use crate::state::State;
use crate::store::{Expired, SilenceMatcher};

/// Largest request body accepted.
const MAX_BODY: u64 = 16 * 1024;

/// A matcher as `"key=glob"` or `{"key": ..., "pattern": ...}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MatcherIn {
    Text(String),
    Parts { key: String, pattern: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddSilence {
    matchers: Vec<MatcherIn>,
    /// e.g. "2h".
    duration: String,
    comment: String,
    #[serde(default)]
    author: Option<String>,
}

fn bad(text: impl Into<String>) -> ApiError {
    ApiError::BadRequest(text.into())
}

fn store_down(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "the silence API cannot reach the store");
    ApiError::StoreDown
}

async fn list(state: &State) -> Result<warp::reply::Response, ApiError> {
    let now = state.now();
    let silences = state.store.silences(now, None).await.map_err(store_down)?;
    let items: Vec<_> = silences.iter().map(|s| silence::to_json(s, now)).collect();
    Ok(json_reply(StatusCode::OK, &json!({"silences": items})))
}

async fn add(state: &State, body: &[u8]) -> Result<warp::reply::Response, ApiError> {
    let req: AddSilence = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body must be JSON like {{\"matchers\": [\"result_code=3019\"], \"duration\": \"2h\", \"comment\": \"NHN incident #123\"}}: {}",
            crate::text::truncate(&e.to_string(), 200)
        ))
    })?;
    let mut matchers = Vec::new();
    for m in req.matchers {
        matchers.push(match m {
            MatcherIn::Text(t) => silence::parse_matcher(&t).map_err(|e| bad(e.to_string()))?,
            MatcherIn::Parts { key, pattern } => SilenceMatcher { key, pattern },
        });
    }
    let duration = humantime::parse_duration(req.duration.trim())
        .map_err(|_| bad("duration is not a duration like 30m or 2h"))?;
    let now = state.now();
    let new = silence::new_silence(
        matchers,
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
        &req.comment,
        req.author.as_deref(),
        now,
    )
    .map_err(|e| bad(e.to_string()))?;
    let stored = state.store.add_silence(new).await.map_err(store_down)?;
    state.silences.invalidate();
    tracing::info!(silence = stored.id, matchers = %silence::describe(&stored.matchers), "silence added over HTTP");
    Ok(json_reply(
        StatusCode::CREATED,
        &silence::to_json(&stored, now),
    ))
}

async fn expire(state: &State, id: i64) -> Result<warp::reply::Response, ApiError> {
    let now = state.now();
    match state
        .store
        .expire_silence(id, now)
        .await
        .map_err(store_down)?
    {
        Expired::Now => {
            state.silences.invalidate();
            tracing::info!(silence = id, "silence expired over HTTP");
            Ok(json_reply(
                StatusCode::OK,
                &json!({"id": id, "expired": true}),
            ))
        }
        Expired::Already(at) => Ok(json_reply(
            StatusCode::OK,
            &json!({"id": id, "expired": false, "ended_at": crate::context::format_ms(at), "ended_at_ms": at}),
        )),
        Expired::Unknown => Err(ApiError::NoSuchSilence(id)),
    }
}

pub fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let auth = warp::header::optional::<String>("authorization");
    let get = warp::path!("api" / "silences")
        .and(warp::get())
        .and(with_state(Arc::clone(&state)))
        .and(auth)
        .then(|state: Arc<State>, auth: Option<String>| async move {
            let result = match check_token(&state, auth.as_deref(), ApiError::SilencesDisabled) {
                Ok(()) => list(&state).await,
                Err(e) => Err(e),
            };
            respond(&state, result)
        });
    let post = warp::path!("api" / "silences")
        .and(warp::post())
        .and(with_state(Arc::clone(&state)))
        .and(auth)
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .then(
            |state: Arc<State>, auth: Option<String>, body: bytes::Bytes| async move {
                let result = match check_token(&state, auth.as_deref(), ApiError::SilencesDisabled)
                {
                    Ok(()) => add(&state, &body).await,
                    Err(e) => Err(e),
                };
                respond(&state, result)
            },
        );
    let delete = warp::path!("api" / "silences" / String)
        .and(warp::delete())
        .and(with_state(state))
        .and(auth)
        .then(
            |id: String, state: Arc<State>, auth: Option<String>| async move {
                let result = match check_token(&state, auth.as_deref(), ApiError::SilencesDisabled)
                {
                    Ok(()) => match id.parse::<i64>() {
                        Ok(id) => expire(&state, id).await,
                        Err(_) => Err(bad("a silence id is a number (see GET /api/silences)")),
                    },
                    Err(e) => Err(e),
                };
                respond(&state, result)
            },
        );
    get.or(post).unify().or(delete).unify()
}
