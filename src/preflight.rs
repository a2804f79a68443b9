//! The rehearsal a config must pass before it serves, shared by `bizrelay check` and reload:
//! every template a route uses is rendered in strict mode for each of the route's
//! destinations against the built-in samples (reference, adversarial and a failure storm for
//! digests), and each body is audited against the destination's limits.
//!
//! Invariants:
//! - Pure apart from CPU: no I/O, so reload can run it before swapping a config in.
//! - One problem per template (per destination type and name), however many samples or
//!   routes fail with it; the first failure is described, the rest are counted.

use std::collections::BTreeMap;

use crate::bizmessage::HookKind;
use crate::config::Loaded;
use crate::context::{Meta, hook_context};
use crate::destination::DestinationKind;
use crate::digest::{self, Member};
use crate::render::{Origin, RenderError};
use crate::route::Route;
use crate::samples::{self, Sample};

/// When the samples were "received", so rendered dates do not depend on the clock.
const SAMPLE_RECEIVED_AT: i64 = 1_795_830_000_000;

/// The first failure of one template, and how many more renders of it failed.
struct Failure {
    uses: Vec<String>,
    first: String,
    with: String,
    more: usize,
}

/// Renders every (route, destination, sample) combination; returns the problems (one per
/// failing template) and how many bodies were checked.
pub fn render_all(loaded: &Loaded) -> (Vec<String>, usize) {
    let all: Vec<Sample> = samples::reference()
        .into_iter()
        .chain(samples::adversarial())
        .collect();
    let storm = samples::storm(500, 300);
    let mut failures: BTreeMap<(DestinationKind, String), Failure> = BTreeMap::new();
    let mut renders = 0;
    for route in loaded.routes.iter() {
        for dest_name in &route.to {
            let Some(dest) = loaded.config.destinations.get(dest_name) else {
                continue;
            };
            let locale = loaded.config.locale_of(dest);
            let mut check = |what: String, template: &str, ctx: &serde_json::Value| {
                renders += 1;
                let problem = match loaded.renderer.render(dest.kind, locale, template, ctx) {
                    Ok(body) => dest.kind.violations(&body).into_iter().next(),
                    Err(e) => Some(reason(&e)),
                };
                let Some(problem) = problem else { return };
                let used = format!("route `{}` → {dest_name}", route.name);
                match failures.entry((dest.kind, template.to_string())) {
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(Failure {
                            uses: vec![used],
                            first: problem,
                            with: what,
                            more: 0,
                        });
                    }
                    std::collections::btree_map::Entry::Occupied(mut slot) => {
                        let f = slot.get_mut();
                        f.more += 1;
                        if !f.uses.contains(&used) {
                            f.uses.push(used);
                        }
                    }
                }
            };
            if route.rate.is_some() {
                for (what, template, ctx) in rate_samples(&route.name, &all) {
                    let ctx = crate::rate::for_destination(ctx, dest_name, dest.kind, locale);
                    check(what, template, &ctx);
                }
            }
            if let Some(group) = &route.group {
                for (what, members) in digest_samples(route, &all, &storm) {
                    let list: Vec<Member<'_>> = members
                        .iter()
                        .map(|s| Member {
                            envelope: &s.envelope,
                            hook: &s.hook,
                            received_at: SAMPLE_RECEIVED_AT,
                        })
                        .collect();
                    let ctx = digest::preview_context(
                        &route.name,
                        &digest::group_key(group, &members[0].envelope, &members[0].hook),
                        group.max_items,
                        loaded.config.privacy.mask_recipient,
                        &list,
                    );
                    let ctx = digest::for_destination(ctx, dest_name, dest.kind, locale);
                    check(
                        what.clone(),
                        route.template_for(HookKind::MessageResult),
                        &ctx,
                    );
                    if let Some(after) = group.resolve_after {
                        let key = digest::group_key(group, &members[0].envelope, &members[0].hook);
                        let ctx = resolved_sample(&route.name, &key, after);
                        let ctx = digest::for_destination(ctx, dest_name, dest.kind, locale);
                        check(
                            format!("{what}, then quiet"),
                            digest::RESOLVED_TEMPLATE,
                            &ctx,
                        );
                    }
                }
                continue;
            }
            if route.rate.is_some() {
                // A rate route without a group sends nothing per hook.
                continue;
            }
            for sample in &all {
                if !route.may_match_kind(sample.hook.kind()) {
                    continue;
                }
                let ctx = hook_context(
                    &sample.envelope,
                    &sample.hook,
                    &Meta {
                        route: &route.name,
                        destination: dest_name,
                        destination_type: dest.kind,
                        locale,
                        received_at_ms: SAMPLE_RECEIVED_AT,
                        mask_recipient: loaded.config.privacy.mask_recipient,
                    },
                );
                if dest.kind == crate::destination::slack_bot::KIND
                    && sample.hook.kind() == HookKind::Template
                {
                    // Template events to a slack_bot destination are thread posts.
                    for (template, what, ctx) in
                        crate::destination::slack_bot::thread::sample_contexts(&ctx)
                    {
                        check(format!("sample {} ({what})", sample.name), template, &ctx);
                    }
                    continue;
                }
                check(
                    format!("sample {}", sample.name),
                    route.template_for(sample.hook.kind()),
                    &ctx,
                );
            }
        }
    }
    let problems = failures
        .into_iter()
        .map(|((kind, name), f)| {
            let file = loaded
                .renderer
                .templates()
                .find_map(|(k, _, n, origin)| match origin {
                    Origin::File(path) if k == kind && n == name => {
                        Some(format!("{}; ", path.display()))
                    }
                    _ => None,
                })
                .unwrap_or_default();
            let more = match f.more {
                0 => String::new(),
                1 => " (and 1 more render)".into(),
                n => format!(" (and {n} more renders)"),
            };
            format!(
                "template {}/{name} ({file}{}): {}, with {}{more}",
                kind.as_str(),
                f.uses.join(", "),
                f.first,
                f.with
            )
        })
        .collect();
    (problems, renders)
}

/// What went wrong, without repeating the template's name.
fn reason(e: &RenderError) -> String {
    match e {
        RenderError::Template { reason, .. } => reason.clone(),
        RenderError::Limit { source, .. } => source.to_string(),
        RenderError::Missing { .. } => e.to_string(),
    }
}

/// The resolved message of a group with this key that went quiet for `after`: 1,204 members
/// sent in digests since the group started (the times are those of the other samples).
fn resolved_sample(route: &str, group_key: &str, after: std::time::Duration) -> serde_json::Value {
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 4);
    let last = SAMPLE_RECEIVED_AT + 1_440_000;
    let timing = crate::store::GroupTiming {
        started_at: SAMPLE_RECEIVED_AT,
        total: 1_204,
        pending: 0,
        last_flush_at: Some(last),
        next_flush_at: None,
        resolve_at: Some(last.saturating_add(after_ms)),
    };
    digest::resolved_context(
        route,
        group_key,
        &timing,
        after_ms,
        3,
        last.saturating_add(after_ms),
    )
}

/// Alerts to try on a rate route: the reference firing and resolved alerts (a first firing and
/// a repeat), and each again with the series values and result codes of the adversarial
/// message result (what a hook can put in an alert).
fn rate_samples(route: &str, all: &[Sample]) -> Vec<(String, &'static str, serde_json::Value)> {
    let nasty = all
        .iter()
        .filter(|s| s.name.starts_with("adversarial"))
        .find_map(|s| match &s.hook.body {
            crate::bizmessage::HookBody::MessageResult(_) => {
                let ctx = hook_context(
                    &s.envelope,
                    &s.hook,
                    &Meta {
                        route,
                        destination: "",
                        destination_type: crate::destination::console::KIND,
                        locale: crate::locale::Locale::En,
                        received_at_ms: SAMPLE_RECEIVED_AT,
                        mask_recipient: true,
                    },
                );
                ctx["resultCode"].as_str().map(str::to_string)
            }
            _ => None,
        });
    let mut out = Vec::new();
    for (template, mut ctx) in crate::rate::sample_contexts() {
        ctx["route"] = serde_json::json!(route);
        out.push(("the sample alert".to_string(), template, ctx.clone()));
        if template == crate::rate::FIRING_TEMPLATE {
            let mut repeat = ctx.clone();
            repeat["repeat"] = serde_json::json!(true);
            out.push(("a repeat of the sample alert".to_string(), template, repeat));
        }
        if let Some(nasty) = &nasty {
            let mut hostile = ctx.clone();
            hostile["series"] =
                serde_json::json!({"message_type": nasty, "sender_grouping_key": nasty});
            hostile["series_label"] =
                serde_json::json!(format!("message_type={nasty}, sender_grouping_key={nasty}"));
            if let Some(codes) = hostile["codes"].as_array_mut() {
                for c in codes {
                    c["code"] = serde_json::json!(nasty);
                }
            }
            crate::context::neutralise(&mut hostile);
            out.push((
                "the sample alert with adversarial series values and codes".to_string(),
                template,
                hostile,
            ));
        }
    }
    out
}

/// Digests to try on a grouped route: all its kind's reference samples, all adversarial ones,
/// and a storm of 500 hooks with 300 distinct codes.
fn digest_samples<'a>(
    route: &Route,
    all: &'a [Sample],
    storm: &'a [Sample],
) -> Vec<(String, Vec<&'a Sample>)> {
    let fits: Vec<&Sample> = all
        .iter()
        .filter(|s| route.may_match_kind(s.hook.kind()))
        .collect();
    let mut out = Vec::new();
    let reference: Vec<&Sample> = fits
        .iter()
        .copied()
        .filter(|s| !s.name.starts_with("adversarial"))
        .collect();
    let adversarial: Vec<&Sample> = fits
        .iter()
        .copied()
        .filter(|s| s.name.starts_with("adversarial"))
        .collect();
    if !reference.is_empty() {
        out.push(("a digest of the reference samples".to_string(), reference));
    }
    if !adversarial.is_empty() {
        out.push((
            "a digest of the adversarial samples".to_string(),
            adversarial,
        ));
    }
    if route.may_match_kind(HookKind::MessageResult) {
        out.push((
            "a digest of a 500-hook storm with 300 codes".to_string(),
            storm.iter().collect(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{ConfigSource, load};

    fn with_template(name: &str, source: &str, routes: &str) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates/slack")).unwrap();
        std::fs::write(
            dir.path().join(format!("templates/slack/{name}.hbs")),
            source,
        )
        .unwrap();
        let text = format!(
            "[destinations.s]\ntype = \"slack\"\nurl = \"https://hooks.slack.invalid/x\"\n\
             [destinations.t]\ntype = \"slack\"\nurl = \"https://hooks.slack.invalid/y\"\n{routes}"
        );
        load(
            &ConfigSource::File {
                path: dir.path().join("config.toml"),
                text,
            },
            &HashMap::new(),
        )
        .unwrap()
    }

    #[test]
    fn the_builtin_default_passes() {
        let loaded = load(&ConfigSource::Builtin, &HashMap::new()).unwrap();
        let (problems, renders) = render_all(&loaded);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(renders > 10, "{renders}");
    }

    #[test]
    fn a_template_that_breaks_json_is_reported_once() {
        // Raw triple-stash output of untrusted text: breaks on the adversarial quotes.
        let loaded = with_template(
            "raw",
            r#"{"text": "{{{templateCode}}}"}"#,
            "[[routes]]\nname = \"r\"\nto = \"s\"\ntemplate = \"raw\"\n[routes.match]\nkind = \"template\"\n",
        );
        let (problems, _) = render_all(&loaded);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(p.starts_with("template slack/raw ("), "{p}");
        assert!(p.contains("raw.hbs; route `r` → s): "), "{p}");
        assert!(
            p.contains("not valid JSON") && p.contains("with sample adversarial"),
            "{p}"
        );
    }

    #[test]
    fn a_misspelt_variable_is_one_error_naming_line_column_and_the_closest_field() {
        let loaded = with_template(
            "status",
            "{\n  \"text\": \"{{templateCod}}\"\n}",
            "[[routes]]\nname = \"a\"\nto = [\"s\", \"t\"]\ntemplate = \"status\"\n[routes.match]\nkind = \"template\"\n\
             [[routes]]\nname = \"b\"\nto = \"s\"\ntemplate = \"status\"\n[routes.match]\nkind = \"unknown\"\n",
        );
        let (problems, renders) = render_all(&loaded);
        assert_eq!(problems.len(), 1, "one error per template: {problems:?}");
        let p = &problems[0];
        assert!(
            p.contains(
                "route `a` → s, route `a` → t, route `b` → s): line 2, column 12: `templateCod` is not in the context (did you mean `templateCode`?), with sample "
            ),
            "{p}"
        );
        assert!(!p.contains("Some("), "{p}");
        assert!(
            p.ends_with(&format!("(and {} more renders)", renders - 1)),
            "{p}"
        );
    }

    #[test]
    fn a_broken_thread_template_of_a_slack_bot_destination_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates/slack_bot")).unwrap();
        std::fs::write(
            dir.path().join("templates/slack_bot/thread_reply.hbs"),
            "{\"text\": \"{{thread.new_coments}}\"}",
        )
        .unwrap();
        let text = "[destinations.b]\ntype = \"slack_bot\"\ntoken = \"xoxb-1\"\nchannel = \"C0123456789\"\n\
             [[routes]]\nname = \"r\"\nto = \"b\"\n[routes.match]\nkind = \"template\"\n"
            .to_string();
        let loaded = load(
            &ConfigSource::File {
                path: dir.path().join("config.toml"),
                text,
            },
            &HashMap::new(),
        )
        .unwrap();
        let (problems, _) = render_all(&loaded);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("template slack_bot/thread_reply (")
                && problems[0].contains("new_coments"),
            "{problems:?}"
        );
    }

    const RATE_ROUTE: &str = "[[routes]]\nname = \"rate\"\nto = \"s\"\n[routes.match]\nkind = \"message_result\"\n\
         [routes.rate]\nby = [\"sender_key\"]\nfire_above = 0.1\n";

    #[test]
    fn a_rate_route_rehearses_both_alerts_and_a_broken_override_is_named() {
        let loaded = with_template("x", "{}", RATE_ROUTE);
        let (problems, renders) = render_all(&loaded);
        assert!(problems.is_empty(), "{problems:?}");
        // Per destination: firing (sample, repeat, adversarial) and resolved (sample,
        // adversarial); nothing per hook.
        assert_eq!(renders, 5);
        let loaded = with_template(
            "rate_firing",
            "{\n  \"text\": \"{{summary}} {{serie_label}}\"\n}",
            RATE_ROUTE,
        );
        let (problems, _) = render_all(&loaded);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(p.starts_with("template slack/rate_firing ("), "{p}");
        assert!(
            p.contains(
                "rate_firing.hbs; route `rate` → s): line 2, column 24: `serie_label` is not in the context (did you mean `series_label`?), with the sample alert"
            ),
            "{p}"
        );
    }

    #[test]
    fn a_grouped_route_with_resolve_after_rehearses_its_resolved_message() {
        let routes = "[[routes]]\nname = \"g\"\nto = \"s\"\n[routes.match]\nkind = \"message_result\"\n\
             [routes.group]\nby = [\"result_code\"]\nresolve_after = \"10m\"\n";
        let loaded = with_template("x", "{}", routes);
        let (problems, _) = render_all(&loaded);
        assert!(problems.is_empty(), "{problems:?}");
        let loaded = with_template("digest_resolved", "{\"text\": \"{{quiet_fr}}\"}", routes);
        let (problems, _) = render_all(&loaded);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("template slack/digest_resolved (")
                && problems[0].contains("did you mean `quiet_for`?")
                && problems[0].contains(", then quiet"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_korean_destination_rehearses_korean_rate_alerts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates/slack/ko")).unwrap();
        // A Korean-only override that insists on Korean text.
        std::fs::write(
            dir.path().join("templates/slack/ko/rate_resolved.hbs"),
            "{\"text\": \"{{#if (eq locale \"ko\")}}{{summary}}{{else}}{{wrong}}{{/if}}\"}",
        )
        .unwrap();
        let text = format!(
            "[destinations.s]\ntype = \"slack\"\nurl = \"https://hooks.slack.invalid/x\"\nlocale = \"ko\"\n{RATE_ROUTE}"
        );
        let loaded = load(
            &ConfigSource::File {
                path: dir.path().join("config.toml"),
                text,
            },
            &HashMap::new(),
        )
        .unwrap();
        let (problems, renders) = render_all(&loaded);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(renders, 5);
        let ctx = crate::rate::sample_contexts().remove(1).1;
        let ctx = crate::rate::for_destination(
            ctx,
            "s",
            crate::destination::slack::KIND,
            crate::locale::Locale::Ko,
        );
        let body = loaded
            .renderer
            .render(
                crate::destination::slack::KIND,
                crate::locale::Locale::Ko,
                "rate_resolved",
                &ctx,
            )
            .unwrap();
        assert!(body.contains("✅ 해소: alimtalk-failure-rate"), "{body}");
        let body = loaded
            .renderer
            .render(
                crate::destination::slack::KIND,
                crate::locale::Locale::Ko,
                "rate_firing",
                &crate::rate::for_destination(
                    crate::rate::sample_contexts().remove(0).1,
                    "s",
                    crate::destination::slack::KIND,
                    crate::locale::Locale::Ko,
                ),
            )
            .unwrap();
        assert!(
            body.contains("실패율 경보 92.6%") && body.contains("카카오톡 유저가 아님"),
            "{body}"
        );
    }
}
