//! Golden renders: every built-in of every destination type in every locale, against the
//! reference samples, compared with `tests/fixtures/golden/<type>/<locale>/<name>.<ext>`.
//! `BIZRELAY_BLESS=1 cargo test --lib render::golden` rewrites the files after a deliberate
//! change (then read the diff).

use std::path::PathBuf;

use serde_json::Value;

use super::Renderer;
use crate::bizmessage::HookKind;
use crate::context::{Meta, hook_context};
use crate::destination::{self, BUILTIN_NAMES, DestinationKind};
use crate::digest::{self, DigestInput, Member};
use crate::locale::Locale;
use crate::samples;

const RECEIVED_AT: i64 = 1_795_830_000_000;

fn context(kind: DestinationKind, locale: Locale, template: &str) -> Value {
    let meta = Meta {
        route: "golden",
        destination: "golden-dest",
        destination_type: kind,
        locale,
        received_at_ms: RECEIVED_AT,
        mask_recipient: true,
    };
    if template.starts_with("thread_") {
        // A later event of a thread: status changed, every comment new.
        let s = samples::one_of(HookKind::Template).expect("a template sample");
        let ctx = hook_context(&s.envelope, &s.hook, &meta);
        return destination::slack_bot::thread::sample_contexts(&ctx)
            .into_iter()
            .find(|(name, what, _)| *name == template && what == "later event")
            .map(|(_, _, ctx)| ctx)
            .expect("a sample of every thread template");
    }
    if template == crate::digest::RESOLVED_TEMPLATE {
        let ctx = digest::sample_resolved_context();
        return digest::for_destination(ctx, "golden-dest", kind, locale);
    }
    if let Some((_, ctx)) = crate::rate::sample_contexts()
        .into_iter()
        .find(|(name, _)| *name == template)
    {
        return crate::rate::for_destination(ctx, "golden-dest", kind, locale);
    }
    let hook_kind = match template {
        "template_status" => HookKind::Template,
        "message_result" => HookKind::MessageResult,
        "unknown_event" => HookKind::Unknown,
        _ => {
            let results: Vec<_> = samples::reference()
                .into_iter()
                .filter(|s| s.hook.kind() == HookKind::MessageResult)
                .collect();
            let members: Vec<Member<'_>> = results
                .iter()
                .enumerate()
                .map(|(i, s)| Member {
                    envelope: &s.envelope,
                    hook: &s.hook,
                    received_at: RECEIVED_AT + i as i64 * 1000,
                })
                .collect();
            let tally = digest::tally(&members);
            let ctx = digest::digest_context(&DigestInput {
                route: "golden",
                group_key: r#"{"result_code":"3019"}"#,
                total_before: 1200,
                mask_recipient: true,
                tally: &tally,
                samples: &members[..3],
            });
            return digest::for_destination(ctx, "golden-dest", kind, locale);
        }
    };
    let s = samples::one_of(hook_kind).expect("a sample of every kind");
    // Message results render as enrichment leaves them: with the template code and the SMS
    // fallback's outcome.
    let s = samples::enriched(s);
    hook_context(&s.envelope, &s.hook, &meta)
}

fn path(kind: DestinationKind, locale: Locale, template: &str) -> PathBuf {
    let ext = if kind.is_json() { "json" } else { "txt" };
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(kind.as_str())
        .join(locale.as_str())
        .join(format!("{template}.{ext}"))
}

#[test]
fn every_builtin_matches_its_golden_render() {
    let r = Renderer::builtin();
    let bless = std::env::var_os("BIZRELAY_BLESS").is_some();
    let mut differ = Vec::new();
    for &kind in destination::ALL {
        for locale in Locale::ALL {
            let extra = kind.extra_builtins(locale).iter().map(|(name, _)| *name);
            for template in BUILTIN_NAMES.into_iter().chain(extra) {
                let body = r
                    .render(kind, locale, template, &context(kind, locale, template))
                    .unwrap_or_else(|e| panic!("{kind:?} {locale:?} {template}: {e}"));
                let shown = if kind.is_json() {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    serde_json::to_string_pretty(&v).unwrap() + "\n"
                } else {
                    body + "\n"
                };
                let file = path(kind, locale, template);
                if bless {
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(&file, &shown).unwrap();
                } else if std::fs::read_to_string(&file).ok().as_deref() != Some(&shown) {
                    differ.push(file.display().to_string());
                }
            }
        }
    }
    assert!(
        differ.is_empty(),
        "renders differ from (or lack) their golden files; if the change is meant, rerun \
         with BIZRELAY_BLESS=1 and read the diff: {differ:#?}"
    );
}
