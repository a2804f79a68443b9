//! Outbox → chat: one sender task per destination (per replica) leases its deliveries in
//! arrival order under the destination's shared pace, posts them, and records each answer as
//! delivered, retry later, or dead.
//!
//! Invariants:
//! - One post in flight per destination across all replicas (the store grants one live lease
//!   per destination); a 429 pauses the whole destination for every replica.
//! - Retries resend the stored body. The service builds the request
//!   ([`destination::ChatService::request`]) and decides what its answer means
//!   ([`destination::ChatService::classify`]); when to retry and when to give up is
//!   [`decide`]. All three are pure.
//! - Delivery is at least once: a crash between a 2xx and its commit resends that one body
//!   (after its lease expires).
//!   Every post carries `X-Bizrelay-Delivery: <id>` so a receiver can tell.
//! - Webhook URLs never reach a log line or an error: only destination names do.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio_util::sync::CancellationToken;

use crate::config::{DeliveryConfig, DestinationConfig};
use crate::destination::{HttpRequest, Outgoing, Request, Verdict};
use crate::pace;
use crate::state::{State, StoreUse, now_ms};
use crate::store::{Attempt, Claimant, Delivery, Lease, LeaseOutcome, Pause};
use crate::text;

/// Longest idle wait before looking at the store again (picks up replays from the CLI).
const POLL: Duration = Duration::from_secs(1);
/// Response body kept for the dead-letter reason.
const EXCERPT: usize = 300;
/// Response body read for classification (services put error details in JSON bodies).
const ANSWER_BODY: usize = 16 * 1024;

/// The delay before retry number `attempt` (1-based): `initial × 2^(attempt-1)` capped at
/// `max`, then jittered into `[d/2, d]` by `jitter ∈ [0, 1]`.
pub fn backoff(initial: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// What one answer means for a delivery, given the limits.
pub fn decide(
    verdict: &Verdict,
    delivery: &Delivery,
    status: Option<u16>,
    detail: &str,
    now: i64,
    cfg: &DeliveryConfig,
    jitter: f64,
) -> Attempt {
    let attempts = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
    let what = match status {
        Some(s) if detail.is_empty() => format!("HTTP {s}"),
        Some(s) => format!("HTTP {s}: {detail}"),
        None => detail.to_string(),
    };
    let wait = match verdict {
        Verdict::Delivered => {
            return Attempt::Delivered {
                status: status.unwrap_or(0),
                at: now,
            };
        }
        Verdict::DeadPayload => {
            return Attempt::Dead {
                status,
                reason: format!(
                    "{what} (the destination refused this body; fix the template, then replay)"
                ),
                at: now,
            };
        }
        Verdict::DeadDestination => {
            return Attempt::Dead {
                status,
                reason: format!(
                    "{what} (the destination refused its URL or credentials, or is gone; fix its settings, then replay)"
                ),
                at: now,
            };
        }
        Verdict::Throttled(d) => *d,
        Verdict::Retry => backoff(cfg.backoff.initial, cfg.backoff.max, attempts, jitter),
    };
    let age = Duration::from_millis(u64::try_from(now - delivery.created_at).unwrap_or(0));
    if attempts >= cfg.max_attempts || age >= cfg.max_age {
        return Attempt::Dead {
            status,
            reason: format!(
                "gave up after {attempts} attempts over {}; last: {what}",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ),
            at: now,
        };
    }
    Attempt::Retry {
        status,
        error: what,
        at: now,
        next_at: now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
    }
}

pub use crate::destination::Answer;

/// Builds the shared HTTP client (connection reuse, no redirects: a webhook that redirects is
/// misconfigured, and following it could leak the body elsewhere).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    // A crypto provider must be installed once per process for rustls; a second call is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bizrelay/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

fn transport_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {}", humantime::format_duration(timeout));
    }
    // The root cause (e.g. "Connection refused"), never the URL.
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", text::truncate(&root.to_string(), 200))
}

/// Posts one body to a chat destination as its service builds the request (the console
/// prints it). `id` is stable per delivery, the same on retries.
pub async fn post(
    client: &reqwest::Client,
    dest: &DestinationConfig,
    timeout: Duration,
    id: &str,
    body: &str,
) -> Answer {
    let out = Outgoing {
        id,
        body,
        unix_time: now_ms() / 1000,
    };
    match dest.kind.request(dest, &out) {
        Ok(Request::Stdout(text)) => print(&text),
        Ok(Request::Http(request)) => send(client, request, timeout).await,
        Err(e) => Answer::none(e.to_string()),
    }
}

fn print(text: &str) -> Answer {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let ok = writeln!(out, "{text}\n").and_then(|_| out.flush()).is_ok();
    Answer {
        status: ok.then_some(200),
        detail: if ok {
            String::new()
        } else {
            "stdout is closed".into()
        },
        ..Answer::default()
    }
}

async fn send(client: &reqwest::Client, request: HttpRequest, timeout: Duration) -> Answer {
    let mut req = client.post(request.url.expose()).timeout(timeout);
    for h in &request.headers {
        let (Ok(name), Ok(mut value)) = (
            reqwest::header::HeaderName::from_bytes(h.name.as_bytes()),
            reqwest::header::HeaderValue::from_str(&h.value),
        ) else {
            // Checked when the config was loaded; never print the value (it may be a key).
            return Answer::none(format!("header {} cannot be sent", h.name));
        };
        value.set_sensitive(h.sensitive);
        req = req.header(name, value);
    }
    let sent = req.body(request.body).send().await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => return Answer::none(transport_error(&e.without_url(), timeout)),
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut bytes = Vec::new();
    while bytes.len() < ANSWER_BODY {
        match tokio::time::timeout(Duration::from_secs(2), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(ANSWER_BODY);
    Answer {
        status: Some(status),
        headers,
        detail: excerpt(&bytes, request.url.expose()),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// One line, without the webhook's secret parts in any encoding (an error page may echo the
/// request URL, and the URL is the credential): the excerpt ends up in logs, dead-letter
/// reasons and send-test output. Redacted before it is shortened, so no cut hides a secret.
fn excerpt(bytes: &[u8], url: &str) -> String {
    let one_line = text::strip_controls(&String::from_utf8_lossy(bytes)).replace(['\n', '\t'], " ");
    let one_line = crate::redact::redact_url_secrets(&one_line, url);
    text::truncate(one_line.trim(), EXCERPT)
}

/// Posts one delivery (a `slack_bot` thread event takes several calls, see [`thread`]);
/// logs and counts what came of it; returns the verdict and what to record.
async fn attempt(
    state: &State,
    client: &reqwest::Client,
    name: &str,
    dest: &DestinationConfig,
    lease: &Lease,
) -> (Verdict, Attempt) {
    let d = &lease.delivery;
    let loaded = state.current();
    let cfg = &loaded.config.delivery;
    let timeout = dest.timeout.unwrap_or(cfg.timeout);
    let (verdict, status, detail) = match thread::event_of(dest, &d.payload) {
        Some(event) => {
            let a = thread::apply(state, client, name, dest, lease, &event, timeout).await;
            (a.verdict, a.status, a.detail)
        }
        None => {
            let answer = post(client, dest, timeout, &d.id.to_string(), &d.payload).await;
            let verdict = dest.kind.classify(&answer, std::time::SystemTime::now());
            (verdict, answer.status, dest.kind.explain(&answer))
        }
    };
    let now = state.now();
    let jitter = rand::rng().random::<f64>();
    let outcome = decide(&verdict, d, status, &detail, now, cfg, jitter);
    let metrics = &state.metrics;
    let hook_id = &*crate::logging::clip(d.hook_id.as_deref().unwrap_or("-"));
    match &outcome {
        Attempt::Delivered { status, .. } => {
            metrics.deliveries.with_label_values(&[name, "ok"]).inc();
            let latency = (now - d.received_at).max(0) as f64 / 1000.0;
            metrics
                .delivery_latency
                .with_label_values(&[name])
                .observe(latency);
            tracing::info!(destination = name, delivery = d.id, route = %d.route, hook_id, status, attempts = d.attempts + 1, "delivered");
            if state.health.record(name, true, Some(*status), now) {
                metrics
                    .destination_healthy
                    .with_label_values(&[name])
                    .set(1);
            }
        }
        Attempt::Retry { error, next_at, .. } => {
            metrics.deliveries.with_label_values(&[name, "retry"]).inc();
            tracing::warn!(destination = name, delivery = d.id, route = %d.route, hook_id, error = %error,
                retry_in_ms = next_at - now, attempts = d.attempts + 1, "delivery failed; will retry");
        }
        Attempt::Dead { reason, .. } => {
            metrics.deliveries.with_label_values(&[name, "dead"]).inc();
            tracing::error!(destination = name, delivery = d.id, route = %d.route, hook_id, reason = %reason, "delivery dead-lettered");
            if verdict == Verdict::DeadDestination && state.health.record(name, false, status, now)
            {
                metrics
                    .destination_healthy
                    .with_label_values(&[name])
                    .set(0);
                tracing::error!(
                    destination = name,
                    status = status,
                    "destination marked unhealthy: check its webhook URL or credentials"
                );
            }
        }
    }
    (verdict, outcome)
}

/// Records an attempt, retrying until the store takes it. Until then the destination posts
/// nothing more (its lease is still held in the store, so no consumer posts the delivery
/// again while this one is unsure). False when shut down first: the lease then expires and
/// the delivery is resent.
async fn record(
    state: &State,
    name: &str,
    lease: &Lease,
    attempt: Attempt,
    pause: Option<Pause>,
    shutdown: &CancellationToken,
) -> bool {
    let mut wait = Duration::from_millis(200);
    loop {
        let result = state
            .store
            .record_attempt(lease, attempt.clone(), pause)
            .await;
        state.store_health.record(StoreUse::Deliver, &result);
        match result {
            Ok(held) => {
                state.metrics.store_writable.set(1.0);
                if !held {
                    tracing::warn!(
                        destination = name,
                        delivery = lease.delivery.id,
                        "the lease on this delivery expired before its outcome was recorded; another replica may post it again (at least once)"
                    );
                }
                return true;
            }
            Err(e) => {
                state.metrics.store_writable.set(0.0);
                tracing::error!(destination = name, delivery = lease.delivery.id, error = %e,
                    "cannot record a delivery attempt; holding this destination until the store takes it");
                if !sleep_or_stop(wait, shutdown).await {
                    return false;
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sleeps for `d`, or returns false early when shut down.
async fn sleep_or_stop(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Milliseconds from `now` until `at`, as a wait bounded by `POLL` (so config changes and
/// work from other processes are seen).
fn until(now: i64, at: i64) -> Duration {
    Duration::from_millis((at - now).clamp(1, POLL.as_millis() as i64) as u64)
}

/// The name a destination's sender reports its liveness under.
pub fn task_name(destination: &str) -> String {
    format!("sender {destination}")
}

/// Runs one destination's sender until `shutdown` (an in-flight post is finished first) or
/// until the destination disappears from the config. Sends are leased from the store one at
/// a time under the destination's shared pace, so senders of several replicas never post
/// the same delivery nor exceed the pace together.
pub async fn run(
    state: Arc<State>,
    name: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
) {
    let wake = state.wake_of(&name);
    let task = task_name(&name);
    state.liveness.started(&task);
    while !shutdown.is_cancelled() {
        let loaded = state.current();
        let Some(dest) = loaded.config.destinations.get(&name).cloned() else {
            tracing::info!(destination = %name, "destination removed from the config; its sender stops");
            state.liveness.forget(&task);
            return;
        };
        let pacer = pace::pacer(dest.rate(), dest.burst());
        let timeout = dest.timeout.unwrap_or(loaded.config.delivery.timeout);
        // The lease outlives the post's timeout, so it cannot expire while the post is on
        // its way; the rest covers recording the outcome.
        let who = Claimant {
            owner: state.claimant.owner.clone(),
            ttl_ms: i64::try_from((timeout + loaded.config.store.lease).as_millis())
                .unwrap_or(i64::MAX),
        };
        let now = state.now();
        let leased = state.store.lease_delivery(&name, &who, now, &pacer).await;
        state.store_health.record(StoreUse::Deliver, &leased);
        state.liveness.progress(&task, now);
        let wait = match leased {
            Ok(LeaseOutcome::Leased(lease)) => {
                let (verdict, outcome) = attempt(&state, &client, &name, &dest, &lease).await;
                let pause = match (&verdict, &outcome) {
                    (Verdict::Throttled(_), Attempt::Retry { next_at, .. }) => Some(Pause {
                        until: *next_at,
                        pacer,
                    }),
                    _ => None,
                };
                if let Some(p) = &pause {
                    tracing::warn!(destination = %name, pause_ms = p.until - state.now(), "rate limited: pausing the destination");
                }
                if !record(&state, &name, &lease, outcome, pause, &shutdown).await {
                    return;
                }
                continue;
            }
            Ok(LeaseOutcome::Paced(at) | LeaseOutcome::Busy(at)) => until(now, at),
            Ok(LeaseOutcome::Idle(next)) => next.map_or(POLL, |at| until(now, at)),
            Err(e) => {
                tracing::error!(destination = %name, error = %e, "cannot read the outbox");
                POLL
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

mod thread;
pub use thread::call as slack_call;

#[cfg(test)]
mod tests;
