//! `bizrelay check`: validates the config, compiles every template, and renders every template
//! a route uses against the built-in samples (reference and adversarial), reporting output
//! that is not valid JSON or breaks a destination limit even after truncation.

use std::collections::HashMap;
use std::process::ExitCode;

use crate::bizmessage::HookKind;
use crate::config::Loaded;
use crate::context::{Meta, hook_context};
use crate::digest::{self, DigestInput, Member};
use crate::reload::SourceSpec;
use crate::route::Route;
use crate::samples::{self, Sample};

pub fn run(spec: &SourceSpec, env: &HashMap<String, String>) -> ExitCode {
    let loaded = match super::load_config(spec, env) {
        Ok(l) => l,
        Err(errors) => {
            super::print_config_errors(&errors);
            return ExitCode::from(1);
        }
    };
    for w in &loaded.warnings {
        println!("warning: {w}");
    }
    let (problems, renders) = render_all(&loaded);
    for p in &problems {
        println!("error: {p}");
    }
    if problems.is_empty() {
        println!(
            "ok: {} ({}): {} routes, {} destinations, {} renders checked",
            loaded.origin,
            loaded.hash,
            loaded.routes.len(),
            loaded.config.destinations.len(),
            renders
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Renders every (route, destination, sample) combination; returns the problems and how many
/// bodies were checked.
pub fn render_all(loaded: &Loaded) -> (Vec<String>, usize) {
    let all: Vec<Sample> = samples::reference()
        .into_iter()
        .chain(samples::adversarial())
        .collect();
    let storm = samples::storm(500, 300);
    let mut problems = Vec::new();
    let mut renders = 0;
    for route in loaded.routes.iter() {
        for dest_name in &route.to {
            let Some(dest) = loaded.config.destinations.get(dest_name) else {
                continue;
            };
            let locale = loaded.config.locale_of(dest);
            let mut check = |what: String, template: &str, ctx: &serde_json::Value| {
                renders += 1;
                match loaded.renderer.render(dest.kind, locale, template, ctx) {
                    Ok(body) => {
                        for v in dest.kind.violations(&body) {
                            problems.push(format!(
                                "route `{}` → {dest_name}: {}/{template} with {what}: {v}",
                                route.name,
                                dest.kind.as_str()
                            ));
                        }
                    }
                    Err(e) => {
                        problems.push(format!("route `{}` → {dest_name}: {what}: {e}", route.name))
                    }
                }
            };
            if let Some(group) = &route.group {
                for (what, members) in digest_samples(route, &all, &storm) {
                    let list: Vec<Member<'_>> = members
                        .iter()
                        .map(|s| Member {
                            envelope: &s.envelope,
                            hook: &s.hook,
                            received_at: 1_795_830_000_000,
                        })
                        .collect();
                    let tally = digest::tally(&list);
                    let samples = &list[..list.len().min(group.max_items)];
                    let ctx = digest::digest_context(&DigestInput {
                        route: &route.name,
                        group_key: &digest::group_key(
                            group,
                            &members[0].envelope,
                            &members[0].hook,
                        ),
                        total_before: 0,
                        mask_recipient: loaded.config.privacy.mask_recipient,
                        tally: &tally,
                        samples,
                    });
                    let ctx = digest::for_destination(ctx, dest_name, dest.kind, locale);
                    check(what, route.template_for(HookKind::MessageResult), &ctx);
                }
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
                        received_at_ms: 1_795_830_000_000,
                        mask_recipient: loaded.config.privacy.mask_recipient,
                    },
                );
                check(
                    format!("sample {}", sample.name),
                    route.template_for(sample.hook.kind()),
                    &ctx,
                );
            }
        }
    }
    (problems, renders)
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
    use super::*;
    use crate::config::{ConfigSource, load};

    #[test]
    fn the_builtin_default_and_the_example_pass() {
        let loaded = load(&ConfigSource::Builtin, &HashMap::new()).unwrap();
        let (problems, renders) = render_all(&loaded);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(renders > 10, "{renders}");
    }

    #[test]
    fn a_template_that_breaks_json_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates/slack")).unwrap();
        // Raw triple-stash output of untrusted text: breaks on the adversarial quotes.
        std::fs::write(
            dir.path().join("templates/slack/raw.hbs"),
            r#"{"text": "{{{templateCode}}}"}"#,
        )
        .unwrap();
        let text = "[destinations.s]\ntype = \"slack\"\nurl = \"https://hooks.slack.invalid/x\"\n\
                    [[routes]]\nname = \"r\"\nto = \"s\"\ntemplate = \"raw\"\n[routes.match]\nkind = \"template\"\n";
        let loaded = load(
            &ConfigSource::File {
                path: dir.path().join("config.toml"),
                text: text.into(),
            },
            &HashMap::new(),
        )
        .unwrap();
        let (problems, _) = render_all(&loaded);
        assert!(!problems.is_empty());
        assert!(
            problems
                .iter()
                .any(|p| p.contains("adversarial") && p.contains("not valid JSON")),
            "{problems:?}"
        );
        assert!(
            problems.iter().all(|p| p.starts_with("route `r` → s:")),
            "{problems:?}"
        );
    }
}
