//! `bizrelay send-test --destination NAME [--route R] [--kind ...]`: renders a harmless sample
//! and posts it through the real delivery path (request building, classification), printing
//! the answer and what bizrelay would make of it. One message per destination: it does not
//! wait for the destination's pace.
//!
//! Invariants: the message is unmistakably a test: the TEST marker
//! ([`crate::destination::test_mark`]) is in its notification text and header whatever the
//! destination type. The samples are harmless (real result codes with meanings, no mentions or
//! links). With `--route R` the route's own template renders it, so an operator tests the
//! template they just wrote; without, the type's built-in template does.

use std::process::ExitCode;

use serde_json::Value;

use super::SampleKind;
use super::out;
use crate::bizmessage::HookKind;
use crate::config::Loaded;
use crate::context::{Meta, hook_context};
use crate::deliver;
use crate::destination::slack_bot::{self, ApiOutcome, Bot, Method, addressed, thread};
use crate::destination::{DestinationConfig, Verdict, test_mark};
use crate::digest::{self, Member};
use crate::locale::Locale;
use crate::route::Route;
use crate::samples;
use crate::state::now_ms;
use crate::store::Thread;

/// Hooks in the test digest, and how many of them it shows.
const DIGEST_HOOKS: usize = 40;
const DIGEST_SHOWN: usize = 5;

pub async fn run(
    loaded: &Loaded,
    destination: Option<&str>,
    route: Option<&str>,
    kind: SampleKind,
    enriched: bool,
) -> ExitCode {
    let route = match route {
        None => None,
        Some(name) => match loaded.routes.iter().find(|r| r.name == name) {
            Some(r) => Some(r),
            None => {
                let known: Vec<&str> = loaded.routes.iter().map(|r| r.name.as_str()).collect();
                out::err(&format!(
                    "error: no route `{}` (configured: {})",
                    out::cell(name),
                    out::cell(&known.join(", "))
                ));
                return ExitCode::from(2);
            }
        },
    };
    if let Some(r) = route {
        let resolves = r.group.as_ref().is_some_and(|g| g.resolve_after.is_some());
        let problem = match kind {
            SampleKind::Digest if r.group.is_none() => Some(
                "sends hooks one by one (no [routes.group]): test it with --kind template or --kind message_result",
            ),
            SampleKind::Template | SampleKind::MessageResult if r.group.is_some() => {
                Some("groups its hooks into digests: test it with --kind digest")
            }
            SampleKind::Template | SampleKind::MessageResult if r.rate.is_some() => Some(
                "sends nothing per hook (it counts them for rate alerts): test it with --kind rate_firing or --kind rate_resolved",
            ),
            SampleKind::RateFiring | SampleKind::RateResolved if r.rate.is_none() => {
                Some("has no [routes.rate], so it sends no rate alert")
            }
            SampleKind::DigestResolved if !resolves => {
                Some("sends no resolved message (no resolve_after in its [routes.group])")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            out::err(&format!("error: route `{}` {problem}", out::cell(&r.name)));
            return ExitCode::from(2);
        }
    }
    let names: Vec<String> = match (destination, route) {
        (Some(d), _) => vec![d.to_string()],
        (None, Some(r)) => r.to.clone(),
        (None, None) => Vec::new(), // clap requires one of them
    };
    let client = match deliver::client() {
        Ok(c) => c,
        Err(e) => {
            out::err(&format!("error: cannot build the HTTP client: {e}"));
            return ExitCode::from(2);
        }
    };
    let mut worst = ExitCode::SUCCESS;
    for name in &names {
        let Some(dest) = loaded.config.destinations.get(name) else {
            let known: Vec<&str> = loaded
                .config
                .destinations
                .keys()
                .map(String::as_str)
                .collect();
            out::err(&format!(
                "error: no destination `{}` (configured: {})",
                out::cell(name),
                out::cell(&known.join(", "))
            ));
            return ExitCode::from(2);
        };
        let code = send_one(loaded, &client, name, dest, route, kind, enriched).await;
        if code != ExitCode::SUCCESS {
            worst = code;
        }
    }
    worst
}

/// The template and context of the test message for one destination.
fn sample(
    loaded: &Loaded,
    name: &str,
    dest: &DestinationConfig,
    route: Option<&Route>,
    kind: SampleKind,
    enriched: bool,
    now: i64,
) -> Result<(String, Value), String> {
    let mask = loaded.config.privacy.mask_recipient;
    let locale = loaded.config.locale_of(dest);
    let route_name = route.map_or("send-test", |r| r.name.as_str());
    let (template, ctx): (String, Value) = match kind {
        SampleKind::Template | SampleKind::MessageResult => {
            let hook_kind = if kind == SampleKind::Template {
                HookKind::Template
            } else {
                HookKind::MessageResult
            };
            let s = samples::one_of(hook_kind).ok_or("no built-in sample")?;
            // A sample of what `[enrich]` learns from NHN (no NHN call).
            let s = if enriched { samples::enriched(s) } else { s };
            let meta = Meta {
                route: route_name,
                destination: name,
                destination_type: dest.kind,
                locale,
                received_at_ms: now,
                mask_recipient: mask,
            };
            let template =
                route.map_or(hook_kind.default_template(), |r| r.template_for(hook_kind));
            (
                template.to_string(),
                hook_context(&s.envelope, &s.hook, &meta),
            )
        }
        SampleKind::Digest => {
            let storm = samples::everyday_storm(DIGEST_HOOKS);
            let members: Vec<Member<'_>> = storm
                .iter()
                .map(|s| Member {
                    envelope: &s.envelope,
                    hook: &s.hook,
                    received_at: now,
                })
                .collect();
            let (template, key, shown) = match route.and_then(|r| Some((r, r.group.as_ref()?))) {
                Some((r, group)) => (
                    r.template_for(HookKind::MessageResult).to_string(),
                    digest::group_key(group, &storm[0].envelope, &storm[0].hook),
                    group.max_items.min(DIGEST_SHOWN),
                ),
                None => ("message_digest".to_string(), "{}".to_string(), DIGEST_SHOWN),
            };
            let ctx = digest::preview_context(route_name, &key, shown, mask, &members);
            (
                template,
                digest::for_destination(ctx, name, dest.kind, locale),
            )
        }
        SampleKind::RateFiring | SampleKind::RateResolved => {
            let want = if kind == SampleKind::RateFiring {
                crate::rate::FIRING_TEMPLATE
            } else {
                crate::rate::RESOLVED_TEMPLATE
            };
            let (template, mut ctx) = crate::rate::sample_contexts()
                .into_iter()
                .find(|(t, _)| *t == want)
                .ok_or("no built-in sample")?;
            ctx["route"] = serde_json::json!(route_name);
            (
                template.to_string(),
                crate::rate::for_destination(ctx, name, dest.kind, locale),
            )
        }
        SampleKind::DigestResolved => {
            let mut ctx = digest::sample_resolved_context();
            ctx["route"] = serde_json::json!(route_name);
            (
                digest::RESOLVED_TEMPLATE.to_string(),
                digest::for_destination(ctx, name, dest.kind, locale),
            )
        }
    };
    Ok((template, ctx))
}

/// The test message for one destination, rendered and marked as a test.
fn rendered(
    loaded: &Loaded,
    dest: &DestinationConfig,
    template: &str,
    ctx: &Value,
) -> Result<String, String> {
    let locale = loaded.config.locale_of(dest);
    let body = loaded
        .renderer
        .render(dest.kind, locale, template, ctx)
        .map_err(|e| e.to_string())?;
    test_mark::mark(dest.kind, locale, &body)
        .map_err(|e| format!("template {template} cannot carry the TEST marker: {e}"))
}

async fn send_one(
    loaded: &Loaded,
    client: &reqwest::Client,
    name: &str,
    dest: &DestinationConfig,
    route: Option<&Route>,
    kind: SampleKind,
    enriched: bool,
) -> ExitCode {
    let now = now_ms();
    let made =
        sample(loaded, name, dest, route, kind, enriched, now).and_then(|(template, ctx)| {
            if dest.kind == slack_bot::KIND && kind == SampleKind::Template {
                return Ok(Err(ctx));
            }
            rendered(loaded, dest, &template, &ctx).map(Ok)
        });
    let body = match made {
        Ok(Ok(b)) => b,
        Ok(Err(ctx)) => {
            let locale = loaded.config.locale_of(dest);
            return thread_test(loaded, client, name, dest, locale, ctx, now).await;
        }
        Err(e) => {
            out::err(&format!("error: {}: {}", out::cell(name), out::cell(&e)));
            return ExitCode::from(1);
        }
    };
    let timeout = dest.timeout.unwrap_or(loaded.config.delivery.timeout);
    // A fresh id per run: a receiver that drops repeated ids must not drop a second test.
    let id = format!("send-test-{now}");
    let answer = deliver::post(client, dest, timeout, &id, &body).await;
    let verdict = dest.kind.classify(&answer, std::time::SystemTime::now());
    let status = answer
        .status
        .map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
    let detail = if answer.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", answer.detail)
    };
    let meaning = match &verdict {
        Verdict::Delivered => "delivered".to_string(),
        Verdict::Throttled(d) => format!(
            "rate limited: would pause the destination for {}",
            humantime::format_duration(*d)
        ),
        Verdict::Retry => "temporary failure: would retry with backoff".to_string(),
        Verdict::DeadPayload => {
            "refused the body: would dead-letter it (check the template)".to_string()
        }
        Verdict::DeadDestination => {
            "the webhook is invalid or gone: would dead-letter and mark the destination unhealthy"
                .to_string()
        }
    };
    let via = route.map_or_else(String::new, |r| {
        format!(" with route `{}`'s template", out::cell(&r.name))
    });
    out::line(&format!(
        "{} ({}){via}: {status}{} → {meaning}",
        out::cell(name),
        dest.kind.as_str(),
        out::cell(&detail)
    ));
    if verdict == Verdict::Delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `send-test --kind template` to a `slack_bot` destination: a root message, then a reply in
/// its thread, as a review's first and a later event would give (nothing is stored).
async fn thread_test(
    loaded: &Loaded,
    client: &reqwest::Client,
    name: &str,
    dest: &DestinationConfig,
    locale: Locale,
    ctx: serde_json::Value,
    now: i64,
) -> ExitCode {
    let bot = match Bot::of(dest) {
        Ok(b) => b,
        Err(e) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    let timeout = dest.timeout.unwrap_or(loaded.config.delivery.timeout);
    let event = thread::ThreadEvent::of_context(ctx);
    let render = |template: &str, ctx: &serde_json::Value| {
        let body = loaded
            .renderer
            .render(dest.kind, locale, template, ctx)
            .map_err(|e| e.to_string())?;
        test_mark::mark(dest.kind, locale, &body)
            .map_err(|e| format!("template {template} cannot carry the TEST marker: {e}"))
    };
    let root = match render(thread::ROOT, &thread::plan(&event, None, false).root) {
        Ok(b) => b,
        Err(e) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(1);
        }
    };
    let id = format!("send-test-{now}");
    let (outcome, status) = deliver::slack_call(
        client,
        &bot,
        Method::Post,
        &id,
        addressed(&root, &bot.channel, None, None, false),
        timeout,
    )
    .await;
    let ApiOutcome::Ok { channel, ts } = outcome else {
        return report(name, "root", status, &outcome);
    };
    report(
        name,
        "root",
        status,
        &ApiOutcome::Ok {
            channel: channel.clone(),
            ts: ts.clone(),
        },
    );
    // The reply as a later event of the same review gives it (status changed since TSC01).
    let earlier = Thread {
        key: event.key(name),
        channel: channel.clone(),
        root_ts: ts.clone(),
        status: "TSC01".into(),
        status_at: String::new(),
        shown: Vec::new(),
        applied: None,
        created_at: now,
        updated_at: now,
    };
    let plan = thread::plan(&event, Some(&earlier), false);
    let Some((template, reply_ctx)) = plan.reply else {
        return ExitCode::SUCCESS;
    };
    let reply = match render(template, &reply_ctx) {
        Ok(b) => b,
        Err(e) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(1);
        }
    };
    let target = if channel.is_empty() {
        bot.channel.clone()
    } else {
        channel
    };
    let (outcome, status) = deliver::slack_call(
        client,
        &bot,
        Method::Post,
        &id,
        addressed(
            &reply,
            &target,
            None,
            Some(&ts),
            template == thread::BROADCAST,
        ),
        timeout,
    )
    .await;
    report(name, "reply", status, &outcome)
}

/// One line per Web API call: what came back and what bizrelay would make of it.
fn report(name: &str, what: &str, status: Option<u16>, outcome: &ApiOutcome) -> ExitCode {
    let status = status.map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
    let meaning = match outcome {
        ApiOutcome::Ok { ts, .. } => format!("posted (ts {ts})"),
        ApiOutcome::Throttled(d) => format!(
            "rate limited: would pause the destination for {}",
            humantime::format_duration(*d)
        ),
        ApiOutcome::Retry(why) => format!("temporary failure: would retry with backoff ({why})"),
        ApiOutcome::Gone(why) | ApiOutcome::DeadPayload(why) => {
            format!("refused: would dead-letter it ({why})")
        }
        ApiOutcome::DeadDestination(why) => {
            format!("would dead-letter and mark the destination unhealthy: {why}")
        }
    };
    out::line(&format!(
        "{} (slack_bot) {what}: {status} → {}",
        out::cell(name),
        out::cell(&meaning)
    ));
    if matches!(outcome, ApiOutcome::Ok { .. }) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
