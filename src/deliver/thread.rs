//! Applies a template event to its Slack thread for a `slack_bot` destination: several Web
//! API calls per delivery (post or update the root, post a reply), planned by
//! [`slack_bot::thread::plan`], each answer classified by [`slack_bot::answer::classify`].
//!
//! Invariants:
//! - Everything here runs under the delivery's lease, and the destination has one live lease
//!   at a time across replicas, so a key's events are applied one at a time, oldest first.
//!   Thread rows are written only while that lease is held (`Store::save_thread`).
//! - Progress is recorded right after each call that cannot be repeated safely: the row is
//!   saved as soon as a root is posted, and again (with this delivery's id as `applied`) as
//!   soon as its reply is posted, so a retry after a partial success neither posts a second
//!   root nor repeats the reply. Updates of the root are idempotent and may repeat.
//! - `chat.postMessage` has no idempotency key: a crash (or a store that refuses every save)
//!   between Slack's answer and the save can post one duplicate root or reply, the same
//!   window as the outbox's (a crash between a 2xx and its commit).
//! - A root that was deleted or cannot be edited is replaced by a fresh root that says so,
//!   and the key is re-pointed to it.

use std::time::Duration;

use crate::config::DestinationConfig;
use crate::destination::slack_bot::thread::{self, BROADCAST, ROOT, ThreadEvent};
use crate::destination::slack_bot::{self, ApiOutcome, Bot, Method, addressed};
use crate::destination::{FallbackInfo, Verdict};
use crate::state::State;
use crate::store::{Lease, Thread};

/// What applying the event came to, as the sender records it.
pub(super) struct Applied {
    pub verdict: Verdict,
    pub status: Option<u16>,
    pub detail: String,
}

impl Applied {
    fn of(outcome: &ApiOutcome, status: Option<u16>) -> Applied {
        let detail = match outcome {
            ApiOutcome::Ok { .. } => String::new(),
            ApiOutcome::Throttled(d) => format!(
                "Slack is rate limiting (Retry-After {})",
                humantime::format_duration(*d)
            ),
            ApiOutcome::Retry(why)
            | ApiOutcome::Gone(why)
            | ApiOutcome::DeadPayload(why)
            | ApiOutcome::DeadDestination(why) => why.clone(),
        };
        Applied {
            verdict: slack_bot::verdict(outcome),
            status,
            detail,
        }
    }

    fn retry(detail: impl Into<String>) -> Applied {
        Applied {
            verdict: Verdict::Retry,
            status: None,
            detail: detail.into(),
        }
    }
}

/// One Web API call: the answer classified, and the HTTP status.
pub async fn call(
    client: &reqwest::Client,
    bot: &Bot,
    method: Method,
    id: &str,
    body: String,
    timeout: Duration,
) -> (ApiOutcome, Option<u16>) {
    let answer = super::send(client, bot.request(method, id, body), timeout).await;
    let outcome = slack_bot::answer::classify(method, &answer, std::time::SystemTime::now());
    (outcome, answer.status)
}

/// Saves the thread's row, trying a few times (a reply that was posted should not be posted
/// again because the store hiccupped). `Err` is what to record instead.
async fn save(state: &State, lease: &Lease, t: &Thread) -> Result<(), Applied> {
    let mut wait = Duration::from_millis(100);
    for _ in 0..4 {
        match state.store.save_thread(lease, t).await {
            Ok(true) => return Ok(()),
            Ok(false) => {
                return Err(Applied::retry(
                    "the lease on this delivery expired while its thread was updated; it will be applied again",
                ));
            }
            Err(e) => {
                tracing::warn!(destination = %lease.delivery.destination, error = %e, "cannot save a Slack thread; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    Err(Applied::retry(
        "the store did not take the thread's state (what was posted may be posted again)",
    ))
}

/// Renders a thread body with the destination's templates (a failing template gives the
/// service's fallback message, logged, so the review is never silently dropped).
fn render(
    state: &State,
    dest: &DestinationConfig,
    name: &str,
    template: &str,
    ctx: &serde_json::Value,
    event: &ThreadEvent,
) -> String {
    let loaded = state.current();
    let locale = loaded.config.locale_of(dest);
    let (body, err) = loaded
        .renderer
        .render_or_fallback(dest.kind, locale, template, ctx, || FallbackInfo {
            title: locale
                .pick(
                    "bizrelay could not render a Slack thread template; the event in brief:",
                    "bizrelay가 Slack 스레드 템플릿을 렌더링하지 못했습니다. 이벤트 요약:",
                )
                .to_string(),
            facts: vec![
                (
                    locale.pick("template code", "템플릿 코드").to_string(),
                    crate::text::strip_bidi(&event.template_code).into_owned(),
                ),
                (
                    locale.pick("status", "상태").to_string(),
                    crate::text::strip_bidi(&event.status).into_owned(),
                ),
            ],
        });
    if let Some(e) = err {
        tracing::error!(destination = name, template, error = %e, "thread template failed; the fallback message was sent");
        state
            .metrics
            .render_fallbacks
            .with_label_values(&[dest.kind.as_str(), template])
            .inc();
    }
    body
}

/// Applies one event to its thread.
pub(super) async fn apply(
    state: &State,
    client: &reqwest::Client,
    name: &str,
    dest: &DestinationConfig,
    lease: &Lease,
    event: &ThreadEvent,
    timeout: Duration,
) -> Applied {
    let bot = match Bot::of(dest) {
        Ok(b) => b,
        Err(e) => return Applied::retry(e.to_string()),
    };
    let d = &lease.delivery;
    let id = d.id.to_string();
    let key = event.key(name);
    let existing = match state.store.thread(&key).await {
        Ok(t) => t,
        Err(e) => return Applied::retry(format!("cannot read the thread: {e}")),
    };
    if let Some(t) = &existing
        && t.applied == Some(d.id)
    {
        // A retry after the reply was posted and saved: nothing is left to do.
        return Applied {
            verdict: Verdict::Delivered,
            status: Some(200),
            detail: String::new(),
        };
    }
    let plan = thread::plan(event, existing.as_ref(), false);
    let now = state.now();
    let mut last_status = Some(200);

    // The root: post one, or bring the known one up to date (replacing it if it is gone).
    let mut current = match existing.clone() {
        None => {
            let body = render(state, dest, name, ROOT, &plan.root, event);
            let (outcome, status) = call(
                client,
                &bot,
                Method::Post,
                &id,
                addressed(&body, &bot.channel, None, None, false),
                timeout,
            )
            .await;
            let ApiOutcome::Ok { channel, ts } = outcome else {
                return Applied::of(&outcome, status);
            };
            let t = Thread {
                key: key.clone(),
                channel: if channel.is_empty() {
                    bot.channel.clone()
                } else {
                    channel
                },
                root_ts: ts,
                status: event.status.clone(),
                status_at: event.status_at.clone(),
                shown: Vec::new(),
                applied: None,
                created_at: now,
                updated_at: now,
            };
            if let Err(a) = save(state, lease, &t).await {
                return a;
            }
            tracing::info!(destination = name, delivery = d.id, thread = %crate::logging::clip(&key.display()), "Slack thread started");
            t
        }
        Some(t) if plan.update_root => {
            let body = render(state, dest, name, ROOT, &plan.root, event);
            let (outcome, status) = call(
                client,
                &bot,
                Method::Update,
                &id,
                addressed(&body, &t.channel, Some(&t.root_ts), None, false),
                timeout,
            )
            .await;
            last_status = status;
            match outcome {
                ApiOutcome::Ok { .. } => t,
                ApiOutcome::Gone(why) => {
                    match replace_root(
                        state, client, &bot, name, dest, lease, event, &t, &why, timeout,
                    )
                    .await
                    {
                        Ok(t) => t,
                        Err(a) => return a,
                    }
                }
                other => return Applied::of(&other, status),
            }
        }
        Some(t) => t,
    };

    // The reply with what changed, into the thread (a locked or lost thread gets a new root
    // once, and the reply goes there).
    if let Some((template, ctx)) = &plan.reply {
        let body = render(state, dest, name, template, ctx, event);
        let mut replaced_once = false;
        loop {
            let (outcome, status) = call(
                client,
                &bot,
                Method::Post,
                &id,
                addressed(
                    &body,
                    &current.channel,
                    None,
                    Some(&current.root_ts),
                    *template == BROADCAST,
                ),
                timeout,
            )
            .await;
            last_status = status;
            match outcome {
                ApiOutcome::Ok { .. } => break,
                ApiOutcome::Gone(why) if !replaced_once => {
                    replaced_once = true;
                    current = match replace_root(
                        state, client, &bot, name, dest, lease, event, &current, &why, timeout,
                    )
                    .await
                    {
                        Ok(t) => t,
                        Err(a) => return a,
                    };
                }
                other => return Applied::of(&other, status),
            }
        }
    }

    let done = Thread {
        status: if plan.takes_status {
            event.status.clone()
        } else {
            current.status.clone()
        },
        status_at: if plan.takes_status {
            event.status_at.clone()
        } else {
            current.status_at.clone()
        },
        shown: plan.shown.clone(),
        applied: Some(d.id),
        updated_at: state.now(),
        ..current
    };
    if let Err(a) = save(state, lease, &done).await {
        return a;
    }
    Applied {
        verdict: Verdict::Delivered,
        status: last_status,
        detail: String::new(),
    }
}

/// Posts a fresh root saying the earlier one is gone, and re-points the key to it.
#[allow(clippy::too_many_arguments)]
async fn replace_root(
    state: &State,
    client: &reqwest::Client,
    bot: &Bot,
    name: &str,
    dest: &DestinationConfig,
    lease: &Lease,
    event: &ThreadEvent,
    old: &Thread,
    why: &str,
    timeout: Duration,
) -> Result<Thread, Applied> {
    tracing::warn!(
        destination = name,
        delivery = lease.delivery.id,
        reason = why,
        "the thread's root message is gone or cannot be edited; posting a new root"
    );
    let ctx = thread::plan(event, Some(old), true).root;
    let body = render(state, dest, name, ROOT, &ctx, event);
    let (outcome, status) = call(
        client,
        bot,
        Method::Post,
        &lease.delivery.id.to_string(),
        addressed(&body, &bot.channel, None, None, false),
        timeout,
    )
    .await;
    let ApiOutcome::Ok { channel, ts } = outcome else {
        return Err(Applied::of(&outcome, status));
    };
    let t = Thread {
        channel: if channel.is_empty() {
            bot.channel.clone()
        } else {
            channel
        },
        root_ts: ts,
        status: event.status.clone(),
        status_at: event.status_at.clone(),
        updated_at: state.now(),
        ..old.clone()
    };
    save(state, lease, &t).await?;
    Ok(t)
}

/// The thread event a delivery carries, for `slack_bot` destinations.
pub(super) fn event_of(dest: &DestinationConfig, payload: &str) -> Option<ThreadEvent> {
    (dest.kind == slack_bot::KIND)
        .then(|| ThreadEvent::parse(payload))
        .flatten()
}
