//! `bizrelay send-test --destination NAME [--kind ...]`: renders a built-in sample with the
//! destination's built-in template and posts it through the real delivery path (request
//! building, classification), printing the answer and what bizrelay would make of it. One
//! message: it does not wait for the destination's pace.

use std::process::ExitCode;

use super::SampleKind;
use super::out;
use crate::bizmessage::HookKind;
use crate::config::Loaded;
use crate::context::{Meta, hook_context};
use crate::deliver;
use crate::destination::Verdict;
use crate::digest::{self, DigestInput, Member};
use crate::samples;
use crate::state::now_ms;

pub async fn run(loaded: &Loaded, name: &str, kind: SampleKind, enriched: bool) -> ExitCode {
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
    let now = now_ms();
    let mask = loaded.config.privacy.mask_recipient;
    let locale = loaded.config.locale_of(dest);
    let (template, ctx) = match kind {
        SampleKind::Template | SampleKind::MessageResult => {
            let hook_kind = if kind == SampleKind::Template {
                HookKind::Template
            } else {
                HookKind::MessageResult
            };
            let Some(s) = samples::one_of(hook_kind) else {
                out::err("error: no built-in sample");
                return ExitCode::from(2);
            };
            // A sample of what `[enrich]` learns from NHN (no NHN call).
            let s = if enriched { samples::enriched(s) } else { s };
            let meta = Meta {
                route: "send-test",
                destination: name,
                destination_type: dest.kind,
                locale,
                received_at_ms: now,
                mask_recipient: mask,
            };
            (
                hook_kind.default_template(),
                hook_context(&s.envelope, &s.hook, &meta),
            )
        }
        SampleKind::Digest => {
            let storm = samples::storm(40, 5);
            let members: Vec<Member<'_>> = storm
                .iter()
                .map(|s| Member {
                    envelope: &s.envelope,
                    hook: &s.hook,
                    received_at: now,
                })
                .collect();
            let tally = digest::tally(&members);
            let ctx = digest::digest_context(&DigestInput {
                route: "send-test",
                group_key: "{}",
                total_before: 0,
                mask_recipient: mask,
                tally: &tally,
                samples: &members[..5],
            });
            (
                "message_digest",
                digest::for_destination(ctx, name, dest.kind, locale),
            )
        }
    };
    let body = match loaded.renderer.render(dest.kind, locale, template, &ctx) {
        Ok(b) => b,
        Err(e) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(1);
        }
    };
    let timeout = dest.timeout.unwrap_or(loaded.config.delivery.timeout);
    let client = match deliver::client() {
        Ok(c) => c,
        Err(e) => {
            out::err(&format!("error: cannot build the HTTP client: {e}"));
            return ExitCode::from(2);
        }
    };
    // A fresh id per run: a receiver that drops repeated ids must not drop a second test.
    let id = format!("send-test-{now}");
    let answer = deliver::post(&client, dest, timeout, &id, &body).await;
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
    out::line(&format!(
        "{} ({}): {status}{} → {meaning}",
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
