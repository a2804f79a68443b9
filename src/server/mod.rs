//! HTTP: warp filters for the webhook and the operator endpoints, and the one place that maps
//! errors to statuses. Every error answer is JSON `{"error", "detail"}`; none echoes the
//! request back.

mod admin;
pub mod ingest;
pub mod listener;
mod silences;

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::bizmessage::ParseError;
use crate::reload::Reloader;
use crate::state::State;
use crate::verify::VerifyError;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Verify(VerifyError),
    #[error("body is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("the body did not arrive in time")]
    BodyTimeout,
    #[error("the body could not be read")]
    BodyRead,
    #[error("{0}")]
    Parse(ParseError),
    #[error("Content-Type must be application/json")]
    ContentType,
    #[error("the store cannot take hooks right now")]
    Store,
    #[error("missing or wrong bearer token")]
    AdminToken,
    #[error("reload over HTTP is disabled: set admin.token")]
    ReloadDisabled,
    #[error("the silence API is disabled: set admin.token")]
    SilencesDisabled,
    /// An operator request (not a webhook) that cannot be used; the text says why.
    #[error("{0}")]
    BadRequest(String),
    #[error("there is no silence {0}")]
    NoSuchSilence(i64),
    #[error("the store is unavailable right now; try again")]
    StoreDown,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Verify(VerifyError::AppKeyNotAllowed) => StatusCode::FORBIDDEN,
            ApiError::Verify(_) | ApiError::AdminToken => StatusCode::UNAUTHORIZED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::BodyRead | ApiError::Parse(_) | ApiError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Store | ApiError::StoreDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ReloadDisabled | ApiError::SilencesDisabled | ApiError::NoSuchSilence(_) => {
                StatusCode::NOT_FOUND
            }
        }
    }

    /// Short machine-readable name, also the `reason` label of the rejection metric.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Verify(VerifyError::AppKeyNotAllowed) => "app_key",
            ApiError::Verify(_) => "signature",
            ApiError::TooLarge { .. } => "size",
            ApiError::BodyTimeout | ApiError::BodyRead | ApiError::Parse(_) => "body",
            ApiError::ContentType => "content_type",
            ApiError::Store | ApiError::StoreDown => "store",
            ApiError::AdminToken => "admin_token",
            ApiError::ReloadDisabled => "reload_disabled",
            ApiError::SilencesDisabled => "silences_disabled",
            ApiError::BadRequest(_) | ApiError::NoSuchSilence(_) => "silence",
        }
    }

    fn title(&self) -> &'static str {
        match self.status() {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::PAYLOAD_TOO_LARGE => "payload too large",
            StatusCode::REQUEST_TIMEOUT => "request timeout",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
            StatusCode::SERVICE_UNAVAILABLE => "service unavailable",
            StatusCode::NOT_FOUND => "not found",
            _ => "bad request",
        }
    }
}

pub fn json_reply(status: StatusCode, body: &serde_json::Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

fn error_reply(status: StatusCode, error: &str, detail: &str) -> warp::reply::Response {
    json_reply(status, &json!({"error": error, "detail": detail}))
}

/// Turns a handler result into a response, logging and counting refusals.
fn respond(
    state: &State,
    result: Result<warp::reply::Response, ApiError>,
) -> warp::reply::Response {
    match result {
        Ok(r) => r,
        Err(e) => {
            state
                .metrics
                .requests_rejected
                .with_label_values(&[e.code()])
                .inc();
            if e.status().is_server_error() {
                tracing::error!(status = e.status().as_u16(), error = %e, "request refused");
            } else {
                tracing::warn!(status = e.status().as_u16(), error = %e, "request refused");
            }
            error_reply(e.status(), e.title(), &e.to_string())
        }
    }
}

fn with_state(
    state: Arc<State>,
) -> impl Filter<Extract = (Arc<State>,), Error = Infallible> + Clone {
    warp::any().map(move || Arc::clone(&state))
}

/// `POST <server.path>`: the webhook.
fn webhook(
    state: Arc<State>,
    path: String,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let segments = Arc::new(segments);
    warp::path::full()
        .and_then(move |full: warp::path::FullPath| {
            let segments = Arc::clone(&segments);
            async move {
                let got: Vec<&str> = full.as_str().split('/').filter(|s| !s.is_empty()).collect();
                if got.iter().copied().eq(segments.iter().map(String::as_str)) {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
        .untuple_one()
        .and(warp::post())
        .and(with_state(state))
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(|state: Arc<State>, headers, body| async move {
            let result = ingest::receive(Arc::clone(&state), headers, Box::pin(body)).await;
            respond(&state, result)
        })
}

/// `GET /healthz`: the process is alive.
fn healthz() -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .map(|| json_reply(StatusCode::OK, &json!({"status": "ok"})))
}

/// The operator endpoints: health, readiness, metrics, reload, silences.
fn operator(
    state: Arc<State>,
    reloader: Reloader,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state(Arc::clone(&state)))
        .then(admin::readyz);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(Arc::clone(&state)))
        .then(admin::metrics);
    let reload = warp::path!("-" / "reload")
        .and(warp::post())
        .and(with_state(Arc::clone(&state)))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::any().map(move || reloader.clone()))
        .then(
            |state: Arc<State>, auth: Option<String>, reloader: Reloader| async move {
                let result = admin::reload(&state, auth, &reloader).await;
                respond(&state, result)
            },
        );
    healthz()
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .or(reload)
        .unify()
        .or(silences::routes(state))
        .unify()
}

/// Unmatched paths and methods get JSON too.
async fn not_found(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, detail) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "no such endpoint")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
    } else {
        (
            StatusCode::BAD_REQUEST,
            "the request could not be understood",
        )
    };
    Ok(error_reply(
        status,
        status.canonical_reason().unwrap_or("error"),
        detail,
    ))
}

/// The routes of the main listener: the webhook, plus the operator endpoints unless they
/// have their own listener.
pub fn main_routes(
    state: Arc<State>,
    reloader: Reloader,
    with_operator: bool,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let path = state.current().config.server.path.clone();
    let hook = webhook(Arc::clone(&state), path);
    let ops = warp::any()
        .and_then(move || async move {
            if with_operator {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(operator(state, reloader));
    hook.or(healthz())
        .unify()
        .or(ops)
        .unify()
        .recover(not_found)
        .unify()
}

/// The routes of the separate admin listener (`admin.listen`).
pub fn admin_routes(
    state: Arc<State>,
    reloader: Reloader,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    operator(state, reloader).recover(not_found).unify()
}
